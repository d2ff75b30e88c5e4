FROM busybox
RUN --mount=type=bind,from=build,source=/out,target=/in ls /in
