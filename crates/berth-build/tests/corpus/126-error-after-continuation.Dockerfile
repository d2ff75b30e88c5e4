FROM busybox
RUN echo \
  ok
BOGUS x
