//! An operator's own sandbox binary: the standard host functions (`fetch`) plus two of the
//! operator's, as the README's "Exposing host functions" walks through. Build and run it in
//! place of `sandbox` (`cargo run -p sandbox --example host_functions`); it is the same
//! program, with the same command line, workers and limits.
//!
//! - `units.toCelsius(fahrenheit)`: synchronous, run in the worker process on the script's
//!   thread: pure computation, with errors thrown as `TypeError`s.
//! - `inventory.lookup(sku)`: asynchronous, run by the supervisor, where it could call a
//!   database or an internal service; the script gets a promise. Here the "service" is a table
//!   with a little latency, and it answers with the tenant the call came from.

use std::{process::ExitCode, time::Duration};

use sandbox::{
    HostFunctions,
    host::{HostError, Json},
};
use serde_json::json;

fn main() -> ExitCode {
    sandbox::main(|config| operator_functions(sandbox::host::standard(config)))
}

fn operator_functions(standard: HostFunctions) -> HostFunctions {
    standard
        .sync("units.toCelsius", |arguments| {
            match arguments.first().and_then(Json::as_f64) {
                Some(fahrenheit) => Ok(json!((fahrenheit - 32.0) * 5.0 / 9.0)),
                None => Err(HostError::type_error(
                    "units.toCelsius: expected a number of degrees Fahrenheit",
                )),
            }
        })
        .asynchronous("inventory.lookup", |arguments, call| async move {
            let Some(sku) = arguments.first().and_then(Json::as_str).map(str::to_owned) else {
                return Err(HostError::type_error(
                    "inventory.lookup: expected a SKU string",
                ));
            };
            // Stands in for a query to the operator's own service.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let stock = match sku.as_str() {
                "apple" => 12,
                "pear" => 0,
                _ => {
                    return Err(HostError::named(
                        "NotFoundError",
                        format!("inventory.lookup: no item {sku}"),
                    ));
                }
            };
            Ok(json!({ "sku": sku, "stock": stock, "askedBy": &*call.tenant }))
        })
}
