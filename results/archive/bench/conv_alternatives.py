# Each convolution kernel of cnn_aux timed alone at the model's shapes (2N = 200 images), against
# the same gradients written as matmuls. Run: python results/archive/bench/conv_alternatives.py
# (and with TF_ENABLE_ONEDNN_OPTS=1); output in conv_alternatives.txt.
import time

import tensorflow as tf

tf.get_logger().setLevel("ERROR")


def bench(f, *a, n=30):
    for _ in range(3):
        f(*a)
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        r = f(*a)
        _ = r.numpy() if hasattr(r, "numpy") else [x.numpy() for x in r]
        ts.append(time.perf_counter() - t)
    ts.sort()
    return ts[len(ts) // 2] * 1e3


def shifted(x):
    xp = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    H, W = x.shape[1], x.shape[2]
    return [xp[:, i : i + H, j : j + W, :] for i in range(3) for j in range(3)]


for N, H, ci, co in [(200, 14, 1, 32), (200, 14, 32, 32), (200, 7, 32, 64), (200, 7, 64, 64)]:
    x = tf.random.normal([N, H, H, ci])
    k = tf.random.normal([3, 3, ci, co])
    dy = tf.random.normal([N, H, H, co])
    fwd = tf.function(lambda x, k: tf.nn.conv2d(x, k, 1, "SAME"))
    bpf = tf.function(
        lambda x, dy: tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=[3, 3, ci, co], out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME"
        )
    )
    bpi = tf.function(
        lambda k, dy: tf.raw_ops.Conv2DBackpropInput(
            input_sizes=[N, H, H, ci], filter=k, out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME"
        )
    )

    @tf.function
    def bpf_mm(x, dy):
        p = tf.reshape(tf.concat(shifted(x), axis=-1), [-1, 9 * ci])
        return tf.reshape(tf.matmul(p, tf.reshape(dy, [-1, co]), transpose_a=True), [3, 3, ci, co])

    @tf.function
    def bpf_9(x, dy):
        d = tf.reshape(dy, [-1, co])
        return tf.reshape(
            tf.stack([tf.matmul(tf.reshape(s, [-1, ci]), d, transpose_a=True) for s in shifted(x)]), [3, 3, ci, co]
        )

    @tf.function
    def bpi_conv(k, dy):
        kf = tf.transpose(tf.reverse(k, [0, 1]), [0, 1, 3, 2])
        return tf.nn.conv2d(dy, kf, 1, "SAME")

    @tf.function
    def fwd_mm(x, k):
        p = tf.reshape(tf.concat(shifted(x), axis=-1), [-1, 9 * ci])
        return tf.reshape(tf.matmul(p, tf.reshape(k, [9 * ci, co])), [N, H, H, co])

    a = bpf(x, dy)
    b = bpf_mm(x, dy)
    c = bpi(k, dy)
    d = bpi_conv(k, dy)
    err = (
        float(tf.reduce_max(tf.abs(a - b)) / tf.reduce_max(tf.abs(a))),
        float(tf.reduce_max(tf.abs(c - d)) / tf.reduce_max(tf.abs(c))),
        float(tf.reduce_max(tf.abs(fwd(x, k) - fwd_mm(x, k)))),
    )
    print(
        f"{H}x{H}x{ci}->{co}: fwd {bench(fwd, x, k):.2f} fwd_mm {bench(fwd_mm, x, k):.2f} "
        f"| bpi {bench(bpi, k, dy):.2f} bpi_conv {bench(bpi_conv, k, dy):.2f} "
        f"| bpf {bench(bpf, x, dy):.2f} bpf_mm {bench(bpf_mm, x, dy):.2f} bpf_9 {bench(bpf_9, x, dy):.2f}  err {err}",
        flush=True,
    )
