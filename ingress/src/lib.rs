//! Public front door of the JavaScript execution service.
