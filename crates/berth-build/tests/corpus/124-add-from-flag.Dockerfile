FROM busybox
ADD --from=x a b
