# The hub's image: one image, three roles (web, worker, scheduler) chosen by the command.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY hub ./hub
COPY connectors ./connectors
COPY mappings ./mappings
COPY rules ./rules
# editable: the mapping tables and default rules are read from /app (mount your own rules over /app/rules)
# var/prometheus: the processes' metric files (a volume shared by web and workers in docker-compose)
RUN pip install -e . && useradd --system --home /app hub && mkdir -p var/prometheus && chown -R hub /app
USER hub
EXPOSE 8080
CMD ["hub", "serve", "--host", "0.0.0.0", "--port", "8080"]
