//! A generic hierarchical timer wheel (placeholder: implemented on the `wheel` branch).
