# The CPU image of apr-qa: the GitHub Action's container and `docker run` locally.
#
#   docker build -t apr-qa:cpu .
#   docker build --build-arg WHEELHOUSE=wheelhouse -t apr-qa:cpu .   # offline: wheels in ./wheelhouse
#
# Two stages, so the compilers that llama-cpp-python needs when no prebuilt wheel is
# given stay out of the image that runs.
ARG BASE_IMAGE=python:3.11.14-slim-bookworm

FROM ${BASE_IMAGE} AS build
# A folder of the build context holding prebuilt wheels (torch, llama-cpp-python, ...);
# with one, nothing is compiled and nothing is downloaded.
ARG WHEELHOUSE=docker/no-wheels
ARG TORCH_VERSION=2.13.0
ARG LLAMA_CPP_PYTHON_VERSION=0.3.36
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
COPY ${WHEELHOUSE}/ /wheelhouse/
# Compilers only when the wheelhouse lacks llama-cpp-python.
RUN if ! ls /wheelhouse/llama_cpp_python-*.whl >/dev/null 2>&1; then \
        apt-get update \
        && apt-get install -y --no-install-recommends build-essential=12.9 cmake=3.25.1-1 git=1:2.39.5-0+deb12u3 \
        && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python3 -m venv /opt/apr-qa \
    && if ls /wheelhouse/*.whl >/dev/null 2>&1; then \
        /opt/apr-qa/bin/pip install --no-index --find-links /wheelhouse \
            "torch==${TORCH_VERSION}" "llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION}" . ; \
    else \
        /opt/apr-qa/bin/pip install --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}" \
        && CMAKE_ARGS="-DGGML_NATIVE=off" /opt/apr-qa/bin/pip install \
            "llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION}" . ; \
    fi \
    && /opt/apr-qa/bin/apr-qa --version

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="apr-qa" \
      org.opencontainers.image.description="Qualify language models by trying to break them (CPU image)" \
      org.opencontainers.image.source="https://github.com/apr-qa/action" \
      org.opencontainers.image.licenses="MIT"
# libgomp1: llama.cpp's CPU threads; git: the Action's README commit.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1=12.2.0-14+deb12u1 git=1:2.39.5-0+deb12u3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 1001 --create-home --shell /usr/sbin/nologin apr-qa
COPY --from=build /opt/apr-qa /opt/apr-qa
ENV PATH=/opt/apr-qa/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_DISABLE_TELEMETRY=1
# 1001 is the GitHub-hosted runner's own uid, so the mounted workspace stays writable
# without running as root; as root (self-hosted), the entrypoint gives what it wrote
# back to the workspace's owner.
USER 1001:1001
WORKDIR /home/apr-qa
ENTRYPOINT ["apr-qa", "action"]
