FROM busybox
CMD echo $HOME
ENTRYPOINT exec top -b
