FROM busybox
LABEL version
