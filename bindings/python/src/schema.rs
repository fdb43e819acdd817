//! Schemas of Python protobuf classes: their IntentIds, computed by the Rust
//! core from the classes' file descriptors, and the Tacit options they carry.

use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};

use bytes::Bytes;
use prost_reflect::{DescriptorPool, MessageDescriptor, Value};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tacit::{IntentId, Schema};

use crate::error::{NativeError, value_error};

/// The schema of message `name` in the encoded `FileDescriptorSet` `set`.
pub(crate) fn schema(name: &str, set: &[u8]) -> Result<Schema, NativeError> {
    let id = IntentId::of_message_in_encoded_set(set, name)
        .map_err(|e| NativeError::new("schema", format!("{name}: {e}")))?;
    Schema::new(id, name.to_owned(), Bytes::copy_from_slice(set)).map_err(NativeError::from)
}

/// The schemas of the classes the Python layer made intents of, by id: the
/// raw calls offer an intent on first use of each session from here, as
/// the typed Rust calls do (a session after a reconnect negotiates afresh).
static REGISTERED: LazyLock<RwLock<HashMap<IntentId, Schema>>> = LazyLock::new(Default::default);

/// The registered schema of `id`, if any.
pub(crate) fn registered(id: &IntentId) -> Option<Schema> {
    REGISTERED.read().unwrap_or_else(|e| e.into_inner()).get(id).cloned()
}

/// A schema argument from Python: `(full name, encoded descriptor set)`.
pub(crate) type SchemaArg = (String, Vec<u8>);

pub(crate) fn schema_arg((name, set): &SchemaArg) -> PyResult<Schema> {
    schema(name, set).map_err(|e| Python::attach(|py| e.into_pyerr(py)))
}

/// `(intent id, reply, stream_item, stream_send)`.
type SchemaInfo<'py> = (Bound<'py, PyBytes>, Option<String>, Option<String>, Option<String>);

/// What the Python layer needs to know of one message class (which it
/// registers, see [`registered`]):
/// `(intent id, reply, stream_item, stream_send)`, the last three the full
/// names the `(tacit.v1.*)` options give, or `None`.
#[pyfunction]
pub(crate) fn schema_info<'py>(py: Python<'py>, name: &str, descriptor_set: &[u8]) -> PyResult<SchemaInfo<'py>> {
    let schema = schema(name, descriptor_set).map_err(|e| e.into_pyerr(py))?;
    REGISTERED.write().unwrap_or_else(|e| e.into_inner()).entry(schema.id()).or_insert_with(|| schema.clone());
    let message = schema.message_descriptor();
    let pool = message.parent_pool();
    let named = |option: &str| named_message(pool, message, option).map_err(|e| value_error("schema", e));
    Ok((
        PyBytes::new(py, schema.id().as_bytes()),
        named("tacit.v1.reply")?,
        named("tacit.v1.stream_item")?,
        named("tacit.v1.stream_send")?,
    ))
}

/// The full name of the message that option `option` of `message` names,
/// resolved as tacit-build resolves it (relative to the message's package,
/// or absolute with a leading dot).
fn named_message(pool: &DescriptorPool, message: &MessageDescriptor, option: &str) -> Result<Option<String>, String> {
    let Some(extension) = pool.get_extension_by_name(option) else {
        return Ok(None);
    };
    let options = message.options();
    if !options.has_extension(&extension) {
        return Ok(None);
    }
    let named = match &*options.get_extension(&extension) {
        Value::String(named) => named.clone(),
        other => return Err(format!("{}: option ({option}) is {other:?}, not a message name", message.full_name())),
    };
    let full_name = match named.strip_prefix('.') {
        Some(absolute) => absolute.to_owned(),
        None if message.package_name().is_empty() => named.clone(),
        None => format!("{}.{named}", message.package_name()),
    };
    match pool.get_message_by_name(&full_name) {
        Some(target) => Ok(Some(target.full_name().to_owned())),
        None => Err(format!("{}: option ({option}) names {named:?}, which is no message", message.full_name())),
    }
}

/// An IntentId as the CLI and the Rust API print it.
#[pyfunction]
pub(crate) fn intent_id_str(id: &[u8]) -> PyResult<String> {
    let id = IntentId::try_from(id).map_err(|_| value_error("schema", "an IntentId is 32 bytes"))?;
    Ok(id.to_string())
}

/// Every wire error code: `(name, value)`, names without `ERROR_CODE_`.
#[pyfunction]
pub(crate) fn error_codes() -> Vec<(String, i32)> {
    (0..4096)
        .filter_map(|value| tacit::ErrorCode::try_from(value).ok())
        .map(|code| (code.as_str_name().trim_start_matches("ERROR_CODE_").to_owned(), code as i32))
        .collect()
}

/// Every act: `(name, value)`, names without `ACT_`.
#[pyfunction]
pub(crate) fn acts() -> Vec<(String, i32)> {
    (0..64)
        .filter_map(|value| tacit::Act::try_from(value).ok())
        .map(|act| (act.as_str_name().trim_start_matches("ACT_").to_owned(), act as i32))
        .collect()
}
