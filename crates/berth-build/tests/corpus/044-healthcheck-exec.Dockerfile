FROM busybox
HEALTHCHECK CMD ["/bin/check", "--fast"]
