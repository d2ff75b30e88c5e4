FROM busybox
RUN echo crlf
