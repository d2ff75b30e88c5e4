# a comment
FROM busybox
    # indented comment
RUN echo hi # not a comment
