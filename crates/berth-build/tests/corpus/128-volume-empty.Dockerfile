FROM busybox
VOLUME
