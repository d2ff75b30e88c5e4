FROM busybox
ARG A
ARG B=2 C
ARG D="quoted value"
