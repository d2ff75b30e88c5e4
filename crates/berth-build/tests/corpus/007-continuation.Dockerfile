FROM busybox
RUN apk add \
      curl \
      git
