FROM busybox
RUN --mount=type=cache echo
