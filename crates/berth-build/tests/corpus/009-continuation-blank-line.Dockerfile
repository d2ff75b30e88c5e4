FROM busybox
RUN echo a \

    b
