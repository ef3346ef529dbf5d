#!/usr/bin/env python3
"""torchvision's own models timed in PyTorch, the peer of bench/families.mjs (issue 20).

  python3 bench/torchvision_peer.py --serve   # JSON lines on stdin, one reply per line

  {"cmd": "setup", "model": "swin_t" | "vit_b_16" | ..., "batch": B, "size": S, "threads": T}
      -> {"params": n}
  {"cmd": "run"}  -> {"ms": wall time of one eval forward under torch.no_grad()}
  {"cmd": "quit"}
Random weights (torchvision's initialisation): time does not depend on the values.
"""
import json
import sys
import time

try:
    import torch
    import torchvision.models as tvm
except ImportError as e:
    sys.stderr.write(f'torchvision_peer.py: torch/torchvision are not importable here ({e})\n')
    sys.exit(3)


def main():
    model = x = None
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            if msg['cmd'] == 'setup':
                torch.set_num_threads(int(msg['threads']))
                torch.manual_seed(0)
                model = getattr(tvm, msg['model'])().eval()
                x = torch.randn(int(msg['batch']), 3, int(msg['size']), int(msg['size']))
                with torch.no_grad():
                    model(x)  # warm-up
                reply = {'params': sum(p.numel() for p in model.parameters())}
            elif msg['cmd'] == 'run':
                with torch.no_grad():
                    t0 = time.perf_counter()
                    model(x)
                    reply = {'ms': (time.perf_counter() - t0) * 1000}
            elif msg['cmd'] == 'quit':
                return
            else:
                reply = {'error': f"unknown cmd {msg['cmd']}"}
        except Exception as e:  # noqa: BLE001 - reported to the caller
            reply = {'error': repr(e)}
        sys.stdout.write(json.dumps(reply) + '\n')
        sys.stdout.flush()


if __name__ == '__main__' and '--serve' in sys.argv:
    main()
