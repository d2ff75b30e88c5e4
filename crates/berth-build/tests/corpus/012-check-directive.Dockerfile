# check=skip=JSONArgsRecommended
FROM busybox
CMD echo hi
