RUN echo
FROM busybox
