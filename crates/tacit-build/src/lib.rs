//! Build-script helper for [Tacit](https://docs.rs/tacit): compiles `.proto`
//! files into Rust types that are Tacit intents.
//!
//! For every message of the compiled files, tacit-build writes what
//! [prost-build](https://docs.rs/prost-build) writes (a struct that
//! implements `prost::Message`) and adds:
//!
//! - `impl tacit::Intent`: the message's IntentId (the content hash of its
//!   schema, computed here at build time with the algorithm of Tacit's
//!   protocol specification), its fully qualified name, and an encoded
//!   descriptor set that defines it, served to peers that fetch the schema;
//! - `impl tacit::Request` for messages that name their reply with the
//!   message option `(tacit.v1.reply)`;
//! - `impl tacit::Subscription` for messages that open a stream lane, named
//!   by the message options `(tacit.v1.stream_item)` (what the handler
//!   streams back) and `(tacit.v1.stream_send)` (what the opener sends after
//!   the opening; `()` when absent).
//!
//! `.proto` files are compiled with [protox](https://docs.rs/protox), in pure
//! Rust: no `protoc` is needed.
//!
//! # Example
//!
//! A `.proto` file names the reply of each request:
//!
//! ```proto
//! // proto/market.proto
//! syntax = "proto3";
//! package market.v1;
//!
//! import "tacit/v1/options.proto";
//!
//! message ReserveSlot {
//!   option (tacit.v1.reply) = "SlotReserved";
//!   string resource = 1;
//! }
//!
//! message SlotReserved {
//!   uint64 slot_id = 1;
//! }
//! ```
//!
//! `tacit/v1/options.proto` comes with tacit-build ([`OPTIONS_PROTO`]): it
//! need not be copied into the crate. The crate's `build.rs` compiles the
//! file into `OUT_DIR`:
//!
//! ```no_run
//! // build.rs
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     tacit_build::configure().compile(&["proto/market.proto"], &["proto"])?;
//!     Ok(())
//! }
//! ```
//!
//! and its library includes the generated module of each package:
//!
//! ```ignore
//! // src/lib.rs
//! pub mod market {
//!     tacit::include_intents!("market.v1");
//!     // or: include!(concat!(env!("OUT_DIR"), "/market.v1.rs"));
//! }
//!
//! use tacit::{Intent, Request};
//! let _: <market::ReserveSlot as Request>::Reply = market::SlotReserved { slot_id: 7 };
//! println!("{} is {}", market::ReserveSlot::NAME, market::ReserveSlot::ID);
//! ```
//!
//! The crate needs `tacit`, `prost` and `tacit-build` (as a
//! build-dependency) in its `Cargo.toml`.
//!
//! # What is generated
//!
//! For each protobuf package, in the output directory:
//!
//! - `<package>.rs`: prost-build's code, with every `bytes` field as
//!   `bytes::Bytes` (decoded without copying from a `Bytes` buffer) and
//!   every map as a `BTreeMap` (so equal messages encode to equal bytes);
//!   then a `FILE_DESCRIPTOR_SET` constant and the `Intent`, `Request` and
//!   `Subscription` impls;
//! - `<package>.tacit.bin`: the encoded `google.protobuf.FileDescriptorSet`
//!   behind `FILE_DESCRIPTOR_SET` and every `Intent::DESCRIPTOR_SET` of the
//!   package: its files and all they import; of the source info, only the
//!   comments of the package's own files (what bridges show as descriptions).
//!
//! Every message is an intent, nested messages included; map entries are
//! not. Files of the well-known `google.protobuf` package are not generated:
//! prost maps their types to `prost-types`.
//!
//! Generated code refers to other packages the way prost-build does, with
//! `super::` paths: when a field or a reply names a type of another
//! package, include each package's file in a module tree that mirrors the
//! package names (`market.v1` in `market::v1`), or use
//! [`include_file`](Builder::include_file), which writes that tree.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod descriptor;
mod error;
mod names;
mod options;
mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use prost_build::Module;
use prost_reflect::{DescriptorPool, MessageDescriptor, Value};
use prost_types::FileDescriptorSet;
use protox::file::{ChainFileResolver, GoogleFileResolver, IncludeFileResolver};
use tacit_wire::IntentId;

pub use error::Error;
pub use options::{OPTIONS_PROTO, OPTIONS_PROTO_NAME};

/// The protobuf package whose types prost maps to `prost-types`: never
/// generated, and never intents.
const WELL_KNOWN_PACKAGE: &str = "google.protobuf";

/// Starts a [`Builder`] with the defaults.
pub fn configure() -> Builder {
    Builder::default()
}

/// Configures and runs code generation; made by [`configure`].
///
/// Defaults: the generated code names the tacit crate `::tacit`, files go to
/// `OUT_DIR`, no include file is written, and `cargo:rerun-if-changed`
/// lines are printed when `OUT_DIR` is set (that is, in a build script).
#[derive(Debug, Clone)]
#[must_use = "a Builder does nothing until compile() is called"]
pub struct Builder {
    tacit_path: String,
    out_dir: Option<PathBuf>,
    include_file: Option<PathBuf>,
    emit_rerun_if_changed: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            tacit_path: "::tacit".to_owned(),
            out_dir: None,
            include_file: None,
            emit_rerun_if_changed: std::env::var_os("OUT_DIR").is_some(),
        }
    }
}

impl Builder {
    /// The path under which generated code finds the tacit crate (its
    /// `Intent`, `Request` and `IntentId`). Default `::tacit`; the tacit
    /// crate itself uses `crate`, and a crate that renames the dependency
    /// passes its own name.
    pub fn tacit_path(mut self, path: impl Into<String>) -> Self {
        self.tacit_path = path.into();
        self
    }

    /// Writes the generated files to `dir` instead of `OUT_DIR` (for code
    /// that is checked in). The generated `.rs` files then load their
    /// descriptor sets with a path relative to themselves, so keep each
    /// `<package>.tacit.bin` beside its `<package>.rs`.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Also writes `name` (relative to the output directory): one file that
    /// includes every generated package in a tree of modules named after the
    /// packages (`market.v1` in `pub mod market { pub mod v1 { .. } }`), so
    /// that types that refer to other packages resolve.
    pub fn include_file(mut self, name: impl Into<PathBuf>) -> Self {
        self.include_file = Some(name.into());
        self
    }

    /// Whether to print `cargo:rerun-if-changed` for every `.proto` file read
    /// from disk (the inputs and the files they import), so that cargo
    /// reruns the build script when one changes. Default: when `OUT_DIR` is
    /// set.
    pub fn emit_rerun_if_changed(mut self, yes: bool) -> Self {
        self.emit_rerun_if_changed = yes;
        self
    }

    /// Compiles `protos` and writes the generated files.
    ///
    /// `protos` are paths of `.proto` files, each inside one of `includes`
    /// (or named relative to one, as in an `import`). Imports are searched
    /// in `includes` in order, then among the files tacit-build carries
    /// ([`OPTIONS_PROTO`]), then among protobuf's well-known types
    /// (`google/protobuf/*.proto`).
    ///
    /// Files are written only when their content changes, so an unchanged
    /// schema does not trigger a rebuild.
    pub fn compile(self, protos: &[impl AsRef<Path>], includes: &[impl AsRef<Path>]) -> Result<(), Error> {
        let (out_dir, in_out_dir) = match &self.out_dir {
            Some(dir) => (dir.clone(), false),
            None => (std::env::var_os("OUT_DIR").map(PathBuf::from).ok_or(Error::OutDirNotSet)?, true),
        };
        let compiler = self.compile_protos(protos, includes)?;
        let set = compiler.file_descriptor_set();
        let pool = compiler.descriptor_pool();

        let mut files = BTreeMap::new();
        let modules = prost_modules(&set)?;
        for (module, code) in &modules {
            let stem = render::module_stem(module);
            let packages: BTreeSet<&str> = set
                .file
                .iter()
                .map(|file| file.package())
                .filter(|package| Module::from_protobuf_package_name(package) == *module)
                .collect();
            let descriptor_set = descriptor::package_descriptor_set(&pool, &packages).map_err(|source| {
                Error::DescriptorSet { package: packages.iter().copied().collect::<Vec<_>>().join(", "), source }
            })?;
            let bin_name = format!("{stem}.tacit.bin");
            let mut code = code.clone();
            let intents = package_intents(&set, &pool, &packages)?;
            render::append_intents(&mut code, &self.tacit_path, &packages, &bin_name, in_out_dir, &intents);
            files.insert(format!("{stem}.rs"), code.into_bytes());
            files.insert(bin_name, descriptor_set);
        }
        if let Some(include_file) = &self.include_file {
            let include = render::include_file(modules.keys(), in_out_dir);
            files.insert(include_file.to_string_lossy().into_owned(), include.into_bytes());
        }

        fs::create_dir_all(&out_dir).map_err(|source| Error::Write { path: out_dir.clone(), source })?;
        for (name, content) in files {
            write_if_changed(&out_dir.join(name), &content)?;
        }
        Ok(())
    }

    /// Parses and links the files (and all they import), printing
    /// `cargo:rerun-if-changed` lines if asked to.
    fn compile_protos(
        &self,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> Result<protox::Compiler, Error> {
        let mut resolver = ChainFileResolver::new();
        for include in includes {
            resolver.add(IncludeFileResolver::new(include.as_ref().to_owned()));
        }
        resolver.add(options::EmbeddedFiles);
        resolver.add(GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        // Source info carries the comments that prost-build turns into docs.
        compiler.include_imports(true).include_source_info(true);
        let compiled = compiler.open_files(protos).map(|_| ());
        if self.emit_rerun_if_changed {
            // Also when compiling failed: fixing a file must rerun the build.
            let paths: BTreeSet<&Path> =
                protos.iter().map(AsRef::as_ref).chain(compiler.files().filter_map(|file| file.path())).collect();
            for path in paths {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
        compiled?;
        Ok(compiler)
    }
}

/// prost-build's code, per package module. prost-build sees every file (it
/// looks up the messages that fields refer to), but the well-known types'
/// module is dropped: prost maps those types to prost-types.
fn prost_modules(set: &FileDescriptorSet) -> Result<BTreeMap<Module, String>, Error> {
    let requests =
        set.file.iter().map(|file| (Module::from_protobuf_package_name(file.package()), file.clone())).collect();
    let mut config = prost_build::Config::new();
    config.bytes(["."]).btree_map(["."]);
    let well_known = Module::from_protobuf_package_name(WELL_KNOWN_PACKAGE);
    Ok(config.generate(requests).map_err(Error::Generate)?.into_iter().filter(|(m, _)| *m != well_known).collect())
}

/// The intents of `packages`: every message except map entries, by name.
fn package_intents(
    set: &FileDescriptorSet,
    pool: &DescriptorPool,
    packages: &BTreeSet<&str>,
) -> Result<Vec<render::GeneratedIntent>, Error> {
    let mut messages: Vec<MessageDescriptor> =
        pool.all_messages().filter(|m| packages.contains(m.package_name()) && !m.is_map_entry()).collect();
    messages.sort_by(|a, b| a.full_name().cmp(b.full_name()));
    messages
        .iter()
        .map(|message| {
            let rust_path = |target: MessageDescriptor| names::rust_path(message.package_name(), target.full_name());
            let reply = named_message(pool, message, options::REPLY_OPTION)
                .map_err(|reply| Error::UnknownReply { message: message.full_name().to_owned(), reply })?;
            let stream_type = |option: &'static str| {
                named_message(pool, message, option).map_err(|name| Error::UnknownStreamType {
                    message: message.full_name().to_owned(),
                    option,
                    name,
                })
            };
            let item = stream_type(options::STREAM_ITEM_OPTION)?;
            let send = stream_type(options::STREAM_SEND_OPTION)?;
            let stream = (item.is_some() || send.is_some()).then(|| render::StreamTypes {
                send: send.map_or_else(|| "()".to_owned(), rust_path),
                item: item.map_or_else(|| "()".to_owned(), rust_path),
            });
            let id = IntentId::of_message(set, message.full_name())
                .map_err(|source| Error::IntentId { message: message.full_name().to_owned(), source })?;
            Ok(render::GeneratedIntent {
                rust_type: names::rust_path(message.package_name(), message.full_name()),
                name: message.full_name().to_owned(),
                id,
                reply: reply.map(rust_path),
                stream,
            })
        })
        .collect()
}

/// The message that `message`'s option `option` (one of Tacit's string
/// options naming a message) names, if it has the option; `Err` holds the
/// option's value when it names no message that is generated here.
///
/// The value is a name relative to the message's package, or fully
/// qualified with a leading dot.
fn named_message(
    pool: &DescriptorPool,
    message: &MessageDescriptor,
    option: &str,
) -> Result<Option<MessageDescriptor>, String> {
    let Some(extension) = pool.get_extension_by_name(option) else {
        // options.proto is not imported anywhere: no message has the option.
        return Ok(None);
    };
    let options = message.options();
    if !options.has_extension(&extension) {
        return Ok(None);
    }
    let named = match &*options.get_extension(&extension) {
        Value::String(named) => named.clone(),
        other => format!("{other:?}"),
    };
    let full_name = match named.strip_prefix('.') {
        Some(absolute) => absolute.to_owned(),
        None if message.package_name().is_empty() => named.clone(),
        None => format!("{}.{named}", message.package_name()),
    };
    pool.get_message_by_name(&full_name)
        .filter(|target| target.package_name() != WELL_KNOWN_PACKAGE && !target.is_map_entry())
        .map(Some)
        .ok_or(named)
}

/// Writes a file unless it already holds `content`.
fn write_if_changed(path: &Path, content: &[u8]) -> Result<(), Error> {
    if fs::read(path).is_ok_and(|existing| existing == content) {
        return Ok(());
    }
    fs::write(path, content).map_err(|source| Error::Write { path: path.to_owned(), source })
}
