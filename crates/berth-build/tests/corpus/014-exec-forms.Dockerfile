FROM busybox
CMD ["echo", "hello world"]
ENTRYPOINT ["/bin/sh", "-c"]
