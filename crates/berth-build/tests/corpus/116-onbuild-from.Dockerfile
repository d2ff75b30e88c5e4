FROM busybox
ONBUILD FROM other
