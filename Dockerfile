# The hub's image: one image, three roles (web, worker, scheduler) chosen by the command.
# The wheel carries the default playbook and mapping tables (hub/defaults/); mount your own rules
# and point HUB_RULES_PATH (and HUB_MAPPINGS_PATH, rarely needed) at them.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY hub ./hub
COPY connectors ./connectors
COPY mappings ./mappings
COPY rules ./rules
RUN pip wheel --no-cache-dir --no-deps -w /dist .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY --from=build /dist /dist
RUN pip install /dist/*.whl && rm -rf /dist && useradd --system --create-home --home-dir /app hub \
    && mkdir -p /app/var/prometheus && chown -R hub /app
WORKDIR /app
# var/prometheus: the processes' metric files (a volume shared by web and workers in docker-compose)
USER hub
EXPOSE 8080
CMD ["hub", "serve", "--host", "0.0.0.0", "--port", "8080"]
