FROM busybox
RUN --mount=type=tmpfs,target=/tmp echo
