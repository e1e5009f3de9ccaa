# syntax=docker/dockerfile:1
# The edge image: nginx with the config rendered from edge/ (edge/render.py) at
# build time, once per target, and edge/static/ served under /static/.
# Build from the repository root:  docker build -f infra/edge.Dockerfile -t conectades-edge .
# Run: compose uses /etc/edge/compose.conf (the default), Kubernetes passes
# `-c /etc/edge/k8s.conf`.

# ---- render: edge/render.py needs only Jinja2 (the template edge/templates/nginx.conf.j2)
FROM python:3.11-slim-bookworm AS render
WORKDIR /src
RUN pip install --no-cache-dir Jinja2==3.1.6
COPY edge/ edge/
RUN mkdir -p /out \
    && python -m edge.render --target compose --out /out/compose.conf \
    && python -m edge.render --target k8s --out /out/k8s.conf

# ---- runtime: open-source nginx >= 1.27.3 is required for `server ... resolve`
# (the compose config re-resolves the scaled `api` service; see docs/deploy.md).
FROM nginx:1.28-alpine AS runtime
COPY --from=render /out/ /etc/edge/
COPY edge/static/ /usr/share/edge/static/
# The only writable paths (tmpfs / emptyDir at run time; owned by nginx if not).
RUN mkdir -p /var/lib/edge /var/cache/edge \
    && chown nginx:nginx /var/lib/edge /var/cache/edge
# uid 101 is the image's `nginx` user: master and workers run unprivileged, which
# is why the edge listens on 8080 (compose maps host port 80 to it).
USER 101:101
EXPOSE 8080
# SIGQUIT is nginx's graceful shutdown: finish in-flight requests, then exit.
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/static/style.css"]
ENTRYPOINT ["nginx", "-e", "stderr", "-p", "/var/lib/edge"]
CMD ["-c", "/etc/edge/compose.conf"]
