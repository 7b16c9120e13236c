//! Private service that runs untrusted JavaScript under hard limits.
