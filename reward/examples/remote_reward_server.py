#!/usr/bin/python3
"""An example RewardService (proto/reward.proto) in Python: exact-match reward.

r1kit's `remote` reward (reward/grpc/remote.h) calls it with a batch of samples and
gets one score per sample back. This server implements:

  exact_match (the default): 1.0 when the completion's answer equals metadata["answer"]
      after stripping whitespace, else 0.0; NaN ("cannot judge") when the sample has
      no "answer". The answer is the text of the last <answer>...</answer>, or the whole
      completion when there is no such tag.
  length: the completion's length in tokens (len(completion_ids)).

Run it (Debian 12: apt-get install python3-grpcio python3-grpc-tools):

  /usr/bin/python3 reward/examples/remote_reward_server.py --port 50061 \
      --token-file reward.token

and name it in a recipe:

  reward:
    - {name: remote, weight: 1.0, address: "127.0.0.1:50061", deadline_ms: 5000,
       token_file: reward.token}

The Python stubs are generated at start from proto/reward.proto into a temporary
directory with grpc_tools.protoc, so nothing generated is checked in. With --port 0
the server picks a free port; either way it prints "listening on PORT" once it serves.
--delay-ms makes every Score sleep first (to try deadlines).
"""
import argparse
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from concurrent import futures

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PROTO = os.path.normpath(os.path.join(HERE, "..", "..", "proto", "reward.proto"))

try:
    import grpc
    from grpc_tools import protoc
except ImportError as e:  # a clear message, not a traceback
    sys.exit("remote_reward_server.py: %s: install python3-grpcio and python3-grpc-tools "
             "(scripts/setup.sh) and run with /usr/bin/python3" % e)


def load_stubs(proto_path, out_dir):
    """Generates reward_pb2 / reward_pb2_grpc from proto_path into out_dir; imports them."""
    proto_dir, proto_file = os.path.split(os.path.abspath(proto_path))
    import grpc_tools  # it ships the well-known protos in grpc_tools/_proto
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    rc = protoc.main(["grpc_tools.protoc", "-I" + proto_dir, "-I" + include,
                      "--python_out=" + out_dir, "--grpc_python_out=" + out_dir, proto_file])
    if rc != 0:
        sys.exit("remote_reward_server.py: protoc failed on %s" % proto_path)
    sys.path.insert(0, out_dir)
    import reward_pb2
    import reward_pb2_grpc
    return reward_pb2, reward_pb2_grpc


ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def extract_answer(completion):
    found = ANSWER_RE.findall(completion)
    return (found[-1] if found else completion).strip()


def exact_match(sample):
    try:
        meta = json.loads(sample.metadata_json or "{}")
    except ValueError:
        return math.nan
    if not isinstance(meta, dict) or "answer" not in meta:
        return math.nan
    return 1.0 if extract_answer(sample.completion) == str(meta["answer"]).strip() else 0.0


def length(sample):
    return float(len(sample.completion_ids))


REWARDS = {"": exact_match, "exact_match": exact_match, "length": length}


def make_servicer(pb2, pb2_grpc, token, delay_s):
    class RewardService(pb2_grpc.RewardServiceServicer):
        def Score(self, request, context):
            if token is not None:
                got = dict(context.invocation_metadata()).get("authorization", "")
                if got != "Bearer " + token:
                    context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong token")
            fn = REWARDS.get(request.reward)
            if fn is None:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              "unknown reward %r (known: %s)" % (request.reward,
                                                                 ", ".join(sorted(REWARDS)[1:])))
            if delay_s > 0:
                time.sleep(delay_s)
            return pb2.ScoreResponse(scores=[fn(s) for s in request.samples])

    return RewardService()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    ap.add_argument("--port", type=int, default=50061, help="port; 0 = pick a free one")
    ap.add_argument("--token-file", default="", help="require this bearer token")
    ap.add_argument("--proto", default=DEFAULT_PROTO, help="path to proto/reward.proto")
    ap.add_argument("--delay-ms", type=float, default=0, help="sleep this long in every Score")
    ap.add_argument("--workers", type=int, default=4, help="handler threads")
    args = ap.parse_args()

    token = None
    if args.token_file:
        with open(args.token_file) as f:
            token = f.read().strip()
        if not token:
            sys.exit("remote_reward_server.py: token file %s is empty" % args.token_file)

    stub_dir = tempfile.mkdtemp(prefix="r1kit_reward_pb_")
    try:
        pb2, pb2_grpc = load_stubs(args.proto, stub_dir)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers))
        pb2_grpc.add_RewardServiceServicer_to_server(
            make_servicer(pb2, pb2_grpc, token, args.delay_ms / 1000.0), server)
        port = server.add_insecure_port("%s:%d" % (args.host, args.port))
        if port == 0:
            sys.exit("remote_reward_server.py: cannot bind %s:%d" % (args.host, args.port))
        # SIGTERM/SIGINT stop the server cleanly, so the stub directory is removed.
        def stop(signum, frame):
            server.stop(grace=0.5)
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        server.start()
        print("listening on %d" % port, flush=True)
        server.wait_for_termination()
    finally:
        shutil.rmtree(stub_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
