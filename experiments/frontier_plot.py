"""The small-model ablation's figure: test accuracy against training seconds per round as a
multiple of the peer's, measured in the same invocation. Seconds from different machines, kernel
libraries or code are not comparable, so only the rows that ran beside the peer are drawn; the
others stay in results/archive/frontier.md."""

from __future__ import annotations

from pathlib import Path

from keras_models.core.machine import summary


def plot_frontier(rows: list[dict], named: dict, path: Path, rounds: int, public_best: float) -> None:
    """Test accuracy (mean ± std over rounds) against training seconds per round / the peer's
    in the same invocation, the marker's area proportional to the serving cost. Rows not chosen
    show their dev accuracy, hollow, since their test accuracy is not reported; a row that ran
    fewer than `rounds` says so. The rows are numbered as in results/archive/frontier.md, with a key
    beside the axes: their names would overlap where the rows crowd one budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 6))
    fig.subplots_adjust(left=0.06, right=0.70, top=0.93, bottom=0.09)

    def point(x, y, err, mflop, name, **style):
        ax.errorbar(x, 100 * y, yerr=100 * (err or 0), fmt="none", ecolor=style.get("edgecolors", "grey"), alpha=0.6)
        ax.scatter([x], [100 * y], s=3 * mflop, zorder=3, **style)
        ax.annotate(name, (x, 100 * y), textcoords="offset points", xytext=(6, 4), fontsize=7)

    key, machines = [], set()
    for number, r in enumerate(rows, 1):
        if not r.get("peer_seconds"):
            continue
        machines |= {summary(x["machine"]) for x in r.get("per_round", []) if "machine" in x}
        ratio = r["seconds_per_round"] / r["peer_seconds"]
        if r["key"] in named:
            style, y, err = {"color": "tab:red"}, r["test_accuracy_mean"], r["test_accuracy_std"]
            label, shown = f"{number}: --recipe {named[r['key']]}", f"--recipe {named[r['key']]}, test"
        else:
            style, y, err = (
                {"facecolors": "none", "edgecolors": "tab:blue"},
                r["dev_accuracy_mean"],
                r["dev_accuracy_std"],
            )
            label, shown = str(number), "dev" + (f", {r['rounds']} rounds" if r["rounds"] < rounds else "")
        point(ratio, y, err, r["mflop"], label, **style)
        key.append(f"{number:>2}  {r['key']} ({shown})")
    fig.text(0.71, 0.93, "rows run beside the peer\n" + "\n".join(key), va="top", fontsize=7, family="monospace")
    ax.axvline(1.0, color="tab:red", linestyle=":", linewidth=1)
    ax.axhline(public_best, color="black", linestyle="--", linewidth=1)
    ax.text(
        0.55,
        public_best + 0.05,
        f"best public result on this protocol, {public_best}% in its report (siamese LeNet)",
        transform=ax.get_yaxis_transform(),
        fontsize=8,
    )
    ax.set_xscale("log")
    ax.set_xticks([0.5, 1, 2, 3, 5], ["0.5", "1", "2", "3", "5"])
    ax.minorticks_off()
    ax.set_xlabel("training seconds per round / the peer's, in the same invocation")
    ax.set_ylabel("test accuracy % (mean ± std over rounds); hollow: dev accuracy")
    where = "; ".join(sorted(machines)) or "machine not recorded"
    ax.set_title(f"cnn_aux against the peer: marker area ~ MFLOP per pair; {where}", fontsize=9)
    ax.set_ylim(96, 99.6)
    fig.savefig(path, dpi=120)
    plt.close(fig)
