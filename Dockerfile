# Pollux image: `pollux serve`, `pollux worker`, `pollux migrate` (see deploy/compose.yaml and the README's
# "Run a cluster"). CPU build; the GPU-heavy part of a cluster is the optional vLLM service.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/data/hf
WORKDIR /app

# The pinned runtime requirements (everything above the "# tests" section). torch/torchvision come as CPU
# wheels from the PyTorch index (a bare PyPI torch pulls GBs of CUDA libraries). PyAV's wheel bundles the
# ffmpeg libraries it needs, so no system ffmpeg.
COPY requirements.txt ./
RUN sed '/^# tests$/,$d' requirements.txt > /tmp/runtime.txt \
 && pip install --extra-index-url https://download.pytorch.org/whl/cpu -r /tmp/runtime.txt \
 && rm /tmp/runtime.txt

COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-deps . && rm -rf src

RUN useradd --create-home --uid 10001 pollux && mkdir /data && chown pollux /data
USER pollux
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"
# SIGTERM drains: in-flight streams and uploads finish, new requests get 503 (drain_seconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["pollux"]
CMD ["serve", "--host", "0.0.0.0", "--data-dir", "/data"]
