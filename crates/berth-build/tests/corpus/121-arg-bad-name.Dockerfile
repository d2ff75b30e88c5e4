FROM busybox
ARG bad-name=1
