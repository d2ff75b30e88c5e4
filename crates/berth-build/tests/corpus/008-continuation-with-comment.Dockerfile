FROM busybox
RUN echo a \
# inside
    && echo b
