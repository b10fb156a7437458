"""Serving: SavedModel export and loading, the answers of an export, the protocols (TF Serving's
REST API and the Open Inference Protocol), the KServe server and the demo page."""
