# Installs tmi-nlp (CPU torch) and runs the demo on the built-in data.
FROM python:3.11-slim
WORKDIR /app
# A C compiler builds the metaclassifiers' fused kernel on first use (without one they train ~8x slower).
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir torch --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY tmi_nlp ./tmi_nlp
COPY recipes ./recipes
RUN pip install --no-cache-dir .
ENV HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
CMD ["tmi-nlp", "demo"]
