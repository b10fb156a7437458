"""The pairs: MNIST images (embedded, downloaded or from a folder), the pairs drawn from them, the
contract every model takes them by, and the tf.data pipeline that batches them."""
