FROM busybox
ADD rootfs.tar.gz /
