FROM busybox AS a
FROM busybox AS b
FROM a AS c
FROM scratch
COPY --from=c / /
COPY --from=1 / /
