#!/usr/bin/env python3
"""SecViT in PyTorch, written from ../shared/SPEC.md, for side-by-side training timings.

The peer `secvit bench --groups train` measures against: the same model (same parameter names and
shapes as the authors' checkpoints), the same step (train-mode forward, cross-entropy with label
smoothing 0.1, backward, AdamW with timm's weight-decay grouping), PyTorch's own kernels
(MKL-DNN convolutions, BLAS GEMMs, autograd). It is written the way the authors' model is: SEC
attention sorts tokens by the cosine score, gathers q/k/v into clusters, runs plain matmul +
softmax per cluster and scatters the result back.

  python3 bench/torch_train.py --check WEIGHTS IO   # the port against the float64 golden
  python3 bench/torch_train.py --serve              # JSON lines on stdin (used by bench/train.mjs)

--serve protocol, one JSON object per line each way:
  {"cmd": "setup", "config": {...reference keys...}, "batch": B, "size": S, "threads": T, "seed": N}
      -> {"params": n, "savedBytes": bytes saved for backward by one forward}
  {"cmd": "step"} -> {"ms": wall time of one step, "loss": value}
  {"cmd": "quit"}
"""
import json
import math
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:  # the peer is optional: say so in one line
    sys.stderr.write(f'torch_train.py: PyTorch is not importable here ({e})\n')
    sys.exit(3)


def rope_tables(angle, h, w):
    """sin/cos [h*w, d]: channel j < d/2 turns with the row, j >= d/2 with the column (SPEC 3.3)."""
    ys = torch.arange(h, dtype=angle.dtype)
    xs = torch.arange(w, dtype=angle.dtype)
    th_y = ys[:, None] * angle[None, :]                      # h, d/2
    th_x = xs[:, None] * angle[None, :]                      # w, d/2
    theta = torch.cat([th_y[:, None, :].expand(h, w, -1), th_x[None, :, :].expand(h, w, -1)], dim=-1)
    theta = theta.reshape(h * w, -1)
    return theta.sin(), theta.cos()


def rotate(t, sin, cos):
    """t * cos + r * sin with r_{2p} = -t_{2p+1}, r_{2p+1} = t_{2p}."""
    t2 = t.unflatten(-1, (-1, 2))
    r = torch.stack([-t2[..., 1], t2[..., 0]], dim=-1).flatten(-2)
    return t * cos + r * sin


class RoPE(nn.Module):
    def __init__(self, d):
        super().__init__()
        n = d // 4
        a = 1.0 / (10000 ** torch.linspace(0, 1, n))
        self.register_buffer('angle', a.repeat_interleave(2))


class Attention(nn.Module):
    def __init__(self, dim, heads, clusters):
        super().__init__()
        self.heads, self.clusters = heads, clusters
        self.qkv = nn.Conv2d(dim, 3 * dim, 1)
        self.lepe = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.out_proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x, sin, cos):
        B, E, h, w = x.shape
        H, L = self.heads, h * w
        d = E // H
        q, k, v = self.qkv(x).chunk(3, dim=1)
        lepe = self.lepe(v)
        q, k, v = (t.reshape(B, H, d, L).transpose(-1, -2) for t in (q, k, v))   # B, H, L, d
        q = rotate(q, sin, cos)
        k = rotate(k, sin, cos) * d ** -0.5
        C = self.clusters
        if C <= 1:
            o = torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v
        else:
            g = k.mean(dim=2, keepdim=True)
            s = (F.normalize(k, dim=-1) @ F.normalize(g, dim=-1).transpose(-1, -2)).squeeze(-1)
            idx = s.argsort(dim=-1).detach()                  # the order is a constant
            gi = idx[..., None].expand(-1, -1, -1, d)
            qs, ks, vs = (t.gather(2, gi).reshape(B, H, C, L // C, d) for t in (q, k, v))
            os = torch.softmax(qs @ ks.transpose(-1, -2), dim=-1) @ vs
            o = torch.empty_like(q).scatter(2, gi, os.reshape(B, H, L, d))
        o = o.transpose(-1, -2).reshape(B, E, h, w)
        return self.out_proj(o + lepe)


class ChannelLN(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class FFN(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x):
        h = F.gelu(self.fc1(x))
        return self.fc2(h + self.dwconv(h))


def drop_path(x, p, training):
    if p == 0.0 or not training:
        return x
    keep = x.new_empty(x.shape[0], 1, 1, 1).bernoulli_(1 - p)
    return x * keep / (1 - p)


class Block(nn.Module):
    def __init__(self, dim, heads, clusters, mlp_ratio, layerscale, init, dp):
        super().__init__()
        self.pos = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = ChannelLN(dim)
        self.attn = Attention(dim, heads, clusters)
        self.norm2 = ChannelLN(dim)
        self.ffn = FFN(dim, int(dim * mlp_ratio))
        self.dp = dp
        if layerscale:
            self.gamma_1 = nn.Parameter(init * torch.ones(1, dim, 1, 1))
            self.gamma_2 = nn.Parameter(init * torch.ones(1, dim, 1, 1))
        else:
            self.gamma_1 = self.gamma_2 = None

    def forward(self, x, sin, cos):
        x = x + self.pos(x)
        a = self.attn(self.norm1(x), sin, cos)
        x = x + drop_path(a if self.gamma_1 is None else self.gamma_1 * a, self.dp, self.training)
        f = self.ffn(self.norm2(x))
        return x + drop_path(f if self.gamma_2 is None else self.gamma_2 * f, self.dp, self.training)


class Downsample(nn.Module):
    def __init__(self, dim, out):
        super().__init__()
        self.reduction = nn.Conv2d(dim, out, 3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(out)

    def forward(self, x):
        return self.norm(self.reduction(x))


class Stage(nn.Module):
    def __init__(self, i, cfg, dps):
        super().__init__()
        dim, heads = cfg['embed_dims'][i], cfg['num_heads'][i]
        self.RoPE = RoPE(dim // heads)
        self.heads = heads
        self.blocks = nn.ModuleList(Block(dim, heads, cfg['num_clusterss'][i][j], cfg['mlp_ratios'][i],
                                          cfg['layerscales'][i], cfg['layer_init_values'], dps[j])
                                    for j in range(cfg['depths'][i]))
        self.downsample = Downsample(dim, cfg['embed_dims'][i + 1]) if i < 3 else None

    def forward(self, x):
        sin, cos = rope_tables(self.RoPE.angle, x.shape[2], x.shape[3])
        for b in self.blocks:
            x = b(x, sin, cos)
        return x if self.downsample is None else self.downsample(x)


class SecViT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        cfg = {'mlp_ratios': [3] * 4, 'layerscales': [False] * 4, 'projection': 1024, 'num_classes': 1000,
               'layer_init_values': 1e-6, 'drop_path_rate': 0.1, **cfg}
        e = cfg['embed_dims']
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Sequential(
            nn.Conv2d(3, e[0] // 2, 3, 2, 1), nn.BatchNorm2d(e[0] // 2), nn.GELU(),
            nn.Conv2d(e[0] // 2, e[0] // 2, 3, 1, 1), nn.BatchNorm2d(e[0] // 2), nn.GELU(),
            nn.Conv2d(e[0] // 2, e[0] // 2, 3, 1, 1), nn.BatchNorm2d(e[0] // 2), nn.GELU(),
            nn.Conv2d(e[0] // 2, e[0], 3, 2, 1), nn.BatchNorm2d(e[0]))
        n = sum(cfg['depths'])
        rates = [cfg['drop_path_rate'] * j / max(n - 1, 1) for j in range(n)]
        starts = [sum(cfg['depths'][:i]) for i in range(4)]
        self.layers = nn.ModuleList(Stage(i, cfg, rates[starts[i]:starts[i] + cfg['depths'][i]]) for i in range(4))
        self.proj = nn.Conv2d(e[3], cfg['projection'], 1)
        self.norm = nn.BatchNorm2d(cfg['projection'])
        self.head = nn.Conv2d(cfg['projection'], cfg['num_classes'], 1)

    def forward(self, x):
        x = self.patch_embed.proj(x)
        for s in self.layers:
            x = s(x)
        x = F.silu(self.norm(self.proj(x)))
        return self.head(x.mean(dim=(2, 3), keepdim=True)).flatten(1)


def read_safetensors(path):
    import numpy as np
    with open(path, 'rb') as f:
        buf = f.read()
    n = int.from_bytes(buf[:8], 'little')
    header = json.loads(buf[8:8 + n])
    meta = header.pop('__metadata__', {})
    kinds = {'F32': np.float32, 'F64': np.float64, 'I64': np.int64, 'I32': np.int32}
    out = {}
    for k, v in header.items():
        a, b = v['data_offsets']
        arr = np.frombuffer(buf[8 + n + a:8 + n + b], dtype=kinds[v['dtype']]).reshape(v['shape'])
        out[k] = torch.from_numpy(arr.copy())
    return out, meta


def check(weights, io):
    """Eval-mode logits of the golden weights, in float64, against the golden's."""
    w, meta = read_safetensors(weights)
    cfg = json.loads(meta['config'])
    model = SecViT(cfg).double().eval()
    missing, unexpected = model.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in w.items()}, strict=True)
    g, _ = read_safetensors(io)
    with torch.no_grad():
        y = model(g['input'].double())
    err = (y - g['logits']).norm() / g['logits'].norm()
    print(json.dumps({'logitsRelError': err.item(), 'params': sum(p.numel() for p in model.parameters())}))
    # Seen: 2.5e-8 (the orders match the golden's exactly; the rest is below float32 rounding,
    # so a structural mistake, which costs O(1), cannot hide under this bound).
    return 0 if err < 1e-6 else 1


def adamw(model, lr=1e-3, wd=0.05):
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and not n.endswith('.bias')]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim > 1 and not n.endswith('.bias'))]
    return torch.optim.AdamW([{'params': decay, 'weight_decay': wd}, {'params': no_decay, 'weight_decay': 0.0}], lr=lr)


def serve():
    state = {}
    for line in sys.stdin:
        msg = json.loads(line)
        if msg['cmd'] == 'quit':
            break
        if msg['cmd'] == 'setup':
            torch.set_num_threads(msg['threads'])
            torch.manual_seed(msg.get('seed', 0))
            model = SecViT(msg['config']).train()
            classes = msg['config'].get('num_classes', 1000)
            x = torch.randn(msg['batch'], 3, msg['size'], msg['size'])
            y = torch.randint(0, classes, (msg['batch'],))
            opt = adamw(model)
            # Bytes saved for backward by one forward (storages counted once).
            seen = {}

            def pack(t):
                seen[t.storage().data_ptr()] = t.storage().nbytes()
                return t
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            params = {p.storage().data_ptr() for p in model.parameters()}
            saved = sum(b for p, b in seen.items() if p not in params and p != x.storage().data_ptr())
            loss.backward()
            opt.zero_grad(set_to_none=True)
            state = {'model': model, 'x': x, 'y': y, 'opt': opt}
            reply = {'params': sum(p.numel() for p in model.parameters()), 'savedBytes': saved, 'threads': torch.get_num_threads()}
        elif msg['cmd'] == 'step':
            m, opt = state['model'], state['opt']
            t0 = time.perf_counter()
            loss = F.cross_entropy(m(state['x']), state['y'], label_smoothing=0.1)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            reply = {'ms': (time.perf_counter() - t0) * 1e3, 'loss': loss.item()}
        else:
            reply = {'error': f"unknown command {msg['cmd']}"}
        sys.stdout.write(json.dumps(reply) + '\n')
        sys.stdout.flush()
    return 0


if __name__ == '__main__':
    if len(sys.argv) == 4 and sys.argv[1] == '--check':
        sys.exit(check(sys.argv[2], sys.argv[3]))
    if len(sys.argv) == 2 and sys.argv[1] == '--serve':
        sys.exit(serve())
    print(__doc__)
    sys.exit(2)
