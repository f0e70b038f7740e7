#!/usr/bin/python3
# What large Generate bodies cost a rollout worker's memory: the worker's resident set
# (VmRSS) before, and its peak (VmHWM) while, CONCURRENT clients each send one Generate
# of SIZE bytes, in three cases:
#   unauthenticated  the worker has a token and the callers do not (refused on the
#                    headers, before the body is read: docs/protocol.md, "Security")
#   no-token         the worker has no token; SIZE over the cap on every message (4 MiB
#                    + 64 KiB), which gRPC 1.51 applies once the message has arrived
#   over-the-cap     the callers have the token; SIZE between the Generate cap (2 MiB)
#                    and the cap on every message: read, refused before it is parsed
# Each case starts a fresh `r1kit rollout-worker` on the tiny Llama of tests/testdata.
# Figures: bench/RESULTS.md, "Rollout worker: request bodies and memory".
#   /usr/bin/python3 bench/worker_body_memory.py [BUILD_DIR] [CONCURRENT] [SIZE_MB]
# Debian's /usr/bin/python3 with python3-grpcio (scripts/setup.sh).
import concurrent.futures
import os
import re
import subprocess
import sys
import tempfile
import time

import grpc

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
CONCURRENT = int(sys.argv[2]) if len(sys.argv) > 2 else 12
SIZE_MB = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
MODEL = os.path.join(os.path.dirname(__file__), "..", "tests", "testdata", "golden", "llama_tiny")
METHOD = "/r1kit.rollout.v1.Rollout/Generate"


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} for {pid}")


def body(nbytes):
    # GenerateRequest field 1 (prompts), one Prompt whose field 1 (token_ids, packed)
    # holds nbytes of varint bytes 0x01: a well-formed message of about nbytes.
    ids = b"\x01" * nbytes
    prompt = b"\x0a" + varint(len(ids)) + ids
    return b"\x0a" + varint(len(prompt)) + prompt


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def run(case, token, send_token, size):
    with tempfile.TemporaryDirectory() as tmp:
        args = [f"{BUILD}/r1kit", "rollout-worker", "--model", MODEL, "--port", "0"]
        if token:
            path = os.path.join(tmp, "token")
            with open(path, "w") as f:
                f.write(token)
            args += ["--token-file", path]
        worker = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        try:
            line = worker.stdout.readline()
            port = int(re.search(r"on [^ ]*:(\d+)", line).group(1))
            time.sleep(0.5)
            rss0 = status_kib(worker.pid, "VmRSS")
            hwm0 = status_kib(worker.pid, "VmHWM")
            channel = grpc.insecure_channel(
                f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", -1)])
            call = channel.unary_stream(METHOD, request_serializer=None,
                                        response_deserializer=None)
            payload = body(size)
            metadata = [("authorization", "Bearer " + token)] if send_token else []

            def one(_):
                try:
                    for _ in call(payload, metadata=metadata, timeout=60):
                        pass
                    return "OK"
                except grpc.RpcError as e:
                    return e.code().name

            with concurrent.futures.ThreadPoolExecutor(CONCURRENT) as pool:
                codes = list(pool.map(one, range(CONCURRENT)))
            time.sleep(0.5)
            hwm1 = status_kib(worker.pid, "VmHWM")
            rss1 = status_kib(worker.pid, "VmRSS")
            channel.close()
            print(f"{case:16s} {CONCURRENT} x {size / 2**20:6.2f} MiB: "
                  f"{sorted(set(codes))}; worker RSS {rss0 / 1024:.0f} MiB before, "
                  f"peak {hwm1 / 1024:.0f} MiB (+{(hwm1 - max(hwm0, rss0)) / 1024:.0f} MiB), "
                  f"{rss1 / 1024:.0f} MiB after", flush=True)
        finally:
            worker.terminate()
            worker.wait()


def main():
    size = int(SIZE_MB * 2**20)
    print(f"== {time.strftime('%F %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
          f"worker {BUILD}/r1kit, model {os.path.normpath(MODEL)}", flush=True)
    run("unauthenticated", "s3cret", False, size)
    run("no-token", "", False, size)
    run("over-the-cap", "s3cret", True, int(3.9 * 2**20))


if __name__ == "__main__":
    main()
