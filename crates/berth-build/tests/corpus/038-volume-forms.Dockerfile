FROM busybox
VOLUME /data
VOLUME ["/a", "/b"]
