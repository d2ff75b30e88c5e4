FROM busybox
COPY --chown=app:app --chmod=0640 --link a b /dst/
