//! The native core of the Python package `tacit-agents` (`import tacit`):
//! the Rust agent API over bytes, for the pure-Python layer in
//! `python/tacit/`, which turns protobuf classes into schemas and bytes.
//! Not an API of its own: use `tacit` from Python.

mod agent;
mod bridge;
mod error;
mod peer;
mod schema;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<bridge::LoopBridge>()?;
    m.add_class::<agent::PyAgent>()?;
    m.add_class::<agent::PyContext>()?;
    m.add_class::<agent::PySlot>()?;
    m.add_class::<peer::PyPeer>()?;
    m.add_class::<peer::PyStreamSender>()?;
    m.add_class::<peer::PyStreamReceiver>()?;
    m.add_function(wrap_pyfunction!(agent::bind, m)?)?;
    m.add_function(wrap_pyfunction!(schema::schema_info, m)?)?;
    m.add_function(wrap_pyfunction!(schema::intent_id_str, m)?)?;
    m.add_function(wrap_pyfunction!(schema::error_codes, m)?)?;
    m.add_function(wrap_pyfunction!(schema::acts, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
