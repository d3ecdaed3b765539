#!/usr/bin/env bash
# Build llama.cpp (CPU only, Release, -DGGML_NATIVE=ON) from the copy vendored in the llama-cpp-python sdist,
# the reference minillm's speed is compared against (benchmarks/vs_llamacpp.py). Nothing here is committed.
#
#     bash scripts/build_llama_cpp.sh                 # defaults below
#     DATA=/somewhere JOBS=2 bash scripts/build_llama_cpp.sh
#
# 1. pip-downloads the llama-cpp-python source package into $DATA/pkgs unless a llama_cpp_python-*.tar.gz is
#    already there (LLAMA_CPP_PYTHON_VERSION pins which one: 0.3.36 vendors llama.cpp commit 0c1e570);
# 2. extracts its vendor/llama.cpp into $DATA/llama.cpp-src and records the vendored commit in
#    $DATA/llama.cpp-src/COMMIT (read from the sdist's .git/modules/vendor/llama.cpp/HEAD);
# 3. configures with cmake into $DATA/llama.cpp-build and builds llama-bench and llama-simple only
#    (nice -n 10, -j$JOBS); the binaries land in $DATA/llama.cpp-build/bin/.
# 4. if MODEL_DIR (default $DATA/qwen2.5-coder-0.5b-instruct, made by scripts/fetch_real_checkpoint.py)
#    exists, converts the checkpoint (with $REF_PYTHON: torch + transformers, and the vendored gguf-py put on
#    PYTHONPATH, not installed; sentencepiece installed there if missing) to a float32 GGUF with llama.cpp's
#    own convert_hf_to_gguf.py --outtype f32: $DATA/qwen2.5-coder-0.5b-instruct-f32.gguf.
# The build takes about 10 minutes of two quiet cores (over an hour on a loaded machine). llama-bench reports its
# commit as "unknown" outside a git checkout, so the commit is also copied to $DATA/llama.cpp-build/COMMIT.
# Don't edit this file while it runs: bash reads a script as it goes.
set -euo pipefail

DATA=${DATA:-/work/data}
JOBS=${JOBS:-2}
REF_PYTHON=${REF_PYTHON:-/work/refvenv/bin/python}
LLAMA_CPP_PYTHON_VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
MODEL_DIR=${MODEL_DIR:-$DATA/qwen2.5-coder-0.5b-instruct}
GGUF_F32=${GGUF_F32:-$DATA/qwen2.5-coder-0.5b-instruct-f32.gguf}
SRC=$DATA/llama.cpp-src
BUILD=$DATA/llama.cpp-build

mkdir -p "$DATA/pkgs"
SDIST="$DATA/pkgs/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
if [ ! -f "$SDIST" ]; then
    echo "downloading llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION (source package)"
    "$REF_PYTHON" -m pip download --no-deps --no-binary :all: -d "$DATA/pkgs" \
        "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
fi

if [ ! -f "$SRC/CMakeLists.txt" ]; then
    echo "extracting vendor/llama.cpp from $SDIST into $SRC"
    tmp=$(mktemp -d "$DATA/llama.cpp-extract.XXXXXX")
    top="llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION"
    tar xzf "$SDIST" -C "$tmp" "$top/vendor/llama.cpp" "$top/.git/modules/vendor/llama.cpp/HEAD"
    rm -f "$tmp/$top/vendor/llama.cpp/.git"  # a gitdir pointer into the sdist's tree: meaningless here
    cp "$tmp/$top/.git/modules/vendor/llama.cpp/HEAD" "$tmp/$top/vendor/llama.cpp/COMMIT"
    rm -rf "$SRC"
    mv "$tmp/$top/vendor/llama.cpp" "$SRC"
    rm -rf "$tmp"
fi
echo "llama.cpp commit $(cat "$SRC/COMMIT")"

cmake -S "$SRC" -B "$BUILD" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_TOOLS=ON
mkdir -p "$BUILD" && cp "$SRC/COMMIT" "$BUILD/COMMIT"  # vs_llamacpp.py reads it
nice -n 10 cmake --build "$BUILD" --config Release -j"$JOBS" --target llama-bench llama-simple
"$BUILD/bin/llama-bench" --help > /dev/null
echo "built: $BUILD/bin/llama-bench $BUILD/bin/llama-simple"

if [ -d "$MODEL_DIR" ] && [ ! -f "$GGUF_F32" ]; then
    echo "converting $MODEL_DIR to a float32 GGUF with llama.cpp's convert_hf_to_gguf.py"
    # convert_hf_to_gguf.py imports sentencepiece before it finds Qwen's tokenizer is BPE (tokenizer.json)
    "$REF_PYTHON" -c "import sentencepiece" 2>/dev/null || "$REF_PYTHON" -m pip install -q sentencepiece
    # the vendored gguf-py on the path (not installed: the reference venv keeps its own gguf for transformers)
    PYTHONPATH="$SRC/gguf-py" nice -n 10 "$REF_PYTHON" "$SRC/convert_hf_to_gguf.py" "$MODEL_DIR" --outtype f32 --outfile "$GGUF_F32.partial"
    mv "$GGUF_F32.partial" "$GGUF_F32"
fi
[ -f "$GGUF_F32" ] && echo "float32 GGUF: $GGUF_F32"
