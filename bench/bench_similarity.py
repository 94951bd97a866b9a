"""DPS throughput next to the `lpips` package on 2AFC triplets, at equal outputs.

    python bench/bench_similarity.py --net alex --triplets 512 --batch-size 64 --size 64

Both compute LPIPS v0.1 (the package's real linear weights) with the same trunk weights (random here, copied
from the package's network into ours: torchvision's pretrained weights cannot be downloaded offline). The
reference scores a triplet as two calls, d(ref, p0) and d(ref, p1), each running the trunk on both inputs;
``DPS.two_afc_distances`` runs the trunk once on [ref; p0; p1] and reuses the reference's features. The ratio
DPS/lpips (triplets per second) is printed, with the largest absolute difference of the distances.
With ``--modes`` the other DPS modes (mean, sort and the combined ones, the flaws paper's definitions; no
package to compare with) are timed on the same trunk and triplets, uncalibrated, and printed beside it.
With ``--variants`` one training epoch of the adaptation's network-in-the-loop variants is timed on the same
triplets (spatial mode, element dropout, the ranking loss; ``lin``: frozen trunk, features without gradients,
one forward pass on [ref; p0; p1]; ``tune`` / ``scratch``: the trunk in train mode, a forward and backward pass
per image role), in training triplets per second.
Not a test: numbers are printed, not asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from percept.similarity import DPS

NETS = {"alex": "alexnet", "vgg": "vgg16", "squeeze": "squeezenet1_1"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--net", default="alex", choices=sorted(NETS))
    p.add_argument("--triplets", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--modes", action="store_true", help="also time the mean / sort / combined modes")
    p.add_argument("--variants", action="store_true", help="also time a training epoch of the adaptation variants")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import lpips

    dev = torch.device(args.device)
    ref_model = lpips.LPIPS(net=args.net, pnet_rand=True, verbose=False).eval().to(dev)
    ours = DPS.lpips(NETS[args.net], weights="random")
    ours.extractor.model.load_state_dict({"features." + k.split(".", 1)[1]: v
                                          for k, v in ref_model.net.state_dict().items()}, strict=False)
    ours = ours.to(dev)
    gen = torch.Generator().manual_seed(0)
    data = [torch.rand(args.triplets, 3, args.size, args.size, generator=gen) for _ in range(3)]
    batches = [[x[s:s + args.batch_size].to(dev) for x in data] for s in range(0, args.triplets, args.batch_size)]

    def run_lpips():
        with torch.no_grad():
            return [torch.cat(v) for v in zip(*[(ref_model(r, a, normalize=True).flatten(),
                                                 ref_model(r, b, normalize=True).flatten()) for r, a, b in batches])]

    def run_ours():
        with torch.inference_mode():
            return [torch.cat(v) for v in zip(*[ours.two_afc_distances(r, a, b) for r, a, b in batches])]

    def timed(fn):
        fn()  # warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return args.triplets / (time.perf_counter() - t0), out

    ref_rates, our_rates = [], []
    for _ in range(args.repeats):  # interleaved: the machine's speed drifts between runs
        r, ref_out = timed(run_lpips)
        o, our_out = timed(run_ours)
        ref_rates.append(r)
        our_rates.append(o)
    diff = max(float((a - b).abs().max()) for a, b in zip(ref_out, our_out))
    rel = max(float(((a - b).abs() / b.abs().clamp_min(1e-12)).max()) for a, b in zip(our_out, ref_out))
    r, o = statistics.median(ref_rates), statistics.median(our_rates)
    print(f"net={args.net} triplets={args.triplets} batch={args.batch_size} size={args.size} device={dev} "
          f"threads={torch.get_num_threads()}")
    print(f"lpips package: {r:8.1f} triplets/s   (median of {args.repeats})")
    print(f"percept DPS:   {o:8.1f} triplets/s")
    print(f"ratio DPS/lpips: {o / r:.2f}x   max |d_ours - d_lpips| = {diff:.2e} (relative {rel:.2e})")
    if args.modes:
        from percept.similarity import MODES

        for mode in MODES:
            metric = DPS(NETS[args.net], weights="random", taps="lpips", mode=mode, scaling="lpips")
            metric.extractor.model.load_state_dict(ours.extractor.model.state_dict())
            metric = metric.to(dev)

            def run_mode(metric=metric):
                with torch.inference_mode():
                    return [metric.two_afc_distances(r, a, b) for r, a, b in batches]

            rate = statistics.median(timed(run_mode)[0] for _ in range(args.repeats))
            print(f"percept DPS {mode:13s} {rate:8.1f} triplets/s  ({rate / r:.2f}x the lpips package's spatial)")

    if args.variants:
        from percept.similarity.calibration import train_channel_weights
        from percept.similarity.metric import channel_maps

        judge = (torch.rand(args.triplets, generator=gen) < 0.5).float()
        for variant in ("lin", "tune"):  # scratch costs what tune costs (same network, other start)
            net = DPS(NETS[args.net], weights="random", taps="lpips", mode="spatial", scaling="lpips")
            net.extractor.model.load_state_dict(ours.extractor.model.state_dict())
            net = net.to(dev)
            params = list(net.extractor.model.parameters())
            for q in params:
                q.requires_grad_(variant == "tune")
            with torch.no_grad():
                groups = [v.shape[1] for v in net.features(data[0][:1].to(dev)).values()]

            def maps(b, net=net, variant=variant):
                x = [t[b].to(dev) for t in data]
                if variant == "tune":
                    net.extractor.model.train()
                    f = [net.features(v) for v in x]
                else:
                    with torch.no_grad():
                        both = net.features(torch.cat(x))
                    f = [{t: v[k * len(b):(k + 1) * len(b)] for t, v in both.items()} for k in range(3)]
                return tuple([channel_maps(f[0][t], f[side][t]) for t in net.taps] for side in (1, 2))

            def run_variant(maps=maps, params=params, variant=variant):
                return train_channel_weights(maps, None, judge, groups=groups, epochs=1, decay_epochs=0, lr=1e-3,
                                             batch_size=args.batch_size, dropout=0.5, boost=10.0,
                                             params=params if variant == "tune" else ())

            rate = statistics.median(timed(run_variant)[0] for _ in range(args.repeats))
            print(f"adaptation {variant:5s} training {rate:8.1f} triplets/s  ({rate / r:.2f}x the lpips package's "
                  "inference rate)")


if __name__ == "__main__":
    main()
