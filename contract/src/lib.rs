//! The contracts between the service's clients and its three roles, written once so they
//! cannot drift apart:
//!
//! - [`request`], [`limits`]: the execute request, parsed once into types that cannot hold a
//!   bad value, by the ingress and the sandbox alike.
//! - [`api`], [`openapi`]: the public API's answer bodies, and the OpenAPI document generated
//!   from them and the request's.
//! - [`tenant`], [`capabilities`], [`ids`], [`envelope`]: what the ingress tells the sandbox
//!   about a request (its tenant, ceilings and capabilities, its request and trace ids) and the
//!   one JSON error shape both answer with.
//! - [`outcome`]: the kinds of script failure clients branch on, which the engine produces.
//! - [`worker`]: what the sandbox's supervisor and its worker processes say over their channel,
//!   and the shared region a worker writes console output into.
//!
//! Nothing here runs JavaScript, serves HTTP or starts processes.

pub mod api;
pub mod capabilities;
pub mod envelope;
pub mod ids;
pub mod limits;
pub mod openapi;
pub mod outcome;
pub mod request;
pub mod tenant;
pub mod worker;
