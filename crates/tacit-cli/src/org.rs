//! `tacit org`: organisation keys, credentials and revocation lists
//! (docs/PROTOCOL.md, "Trust: organisations and credentials").

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tacit::intents::{Revocations, RevocationsApplied, revocations_applied};
use tacit::{AgentId, AskOptions};
use tacit_handshake::credential::{
    Credential, CredentialError, OrgKey, OrgSigner, SignedCredential, SignedRevocationList,
};

use crate::connect::{self, ConnectArgs};
use crate::error::CliError;

/// The `tacit org` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Make a new organisation key file and print its key. Never overwrites a file.
    Keygen {
        /// Where to write the key (PKCS#8 PEM, mode 0600).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Sign a credential for an agent.
    Issue {
        /// The organisation's key file.
        #[arg(long, value_name = "FILE")]
        org_key: PathBuf,
        /// The agent's AgentId.
        #[arg(long, value_name = "AGENTID")]
        subject: AgentId,
        /// A role to grant (repeatable).
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// How long it is valid from now: a number with s, m, h or d (e.g. 30d).
        #[arg(long, value_name = "DUR", value_parser = parse_duration)]
        expires: Duration,
        /// The serial that revocation lists name it by (default: the current Unix time).
        #[arg(long, value_name = "N")]
        serial: Option<u64>,
        /// Where to write the signed credential.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Sign a revocation list (it replaces any older list of the organisation): write it to a
    /// file, send it to a running agent as the standard intent `tacit.intents.v1.Revocations`, or both.
    Revoke {
        /// The organisation's key file.
        #[arg(long, value_name = "FILE")]
        org_key: PathBuf,
        /// A serial to revoke (repeatable).
        #[arg(long = "serial", value_name = "N", required = true)]
        serials: Vec<u64>,
        /// Where to write the signed list.
        #[arg(long, value_name = "LIST", required_unless_present = "send")]
        out: Option<PathBuf>,
        #[command(flatten)]
        send: SendArgs,
    },
    /// Print a credential or revocation-list file as JSON (the signature is not checked).
    Show {
        /// The file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// Where `tacit org revoke --send` sends the list, and as whom.
#[derive(Debug, clap::Args)]
pub(crate) struct SendArgs {
    /// Send the list to the agent at this address (HOST:PORT) and print its answer as JSON.
    #[arg(long, value_name = "ADDR")]
    send: Option<String>,
    /// Insist that the agent holds this AgentId (exit 4 otherwise).
    #[arg(long, value_name = "AGENT_ID", requires = "send")]
    expect: Option<AgentId>,
    /// Dial as the authority agent in this key file (default: the organisation's key itself, an authority
    /// by definition); another agent needs a credential of the organisation with role `authority`.
    #[arg(long, value_name = "FILE", requires = "send")]
    key: Option<PathBuf>,
    /// Present this credential (a file of `tacit org issue`, repeatable), e.g. the key's `authority` credential.
    #[arg(long = "credential", value_name = "FILE", requires = "send")]
    credentials: Vec<PathBuf>,
    /// Seconds to wait for the connection, and again for the answer.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = crate::connect::parse_secs)]
    timeout: Duration,
}

/// `30`, `30s`, `15m`, `12h`, `30d`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration such as 30d"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    let seconds = number.checked_mul(scale).filter(|&s| s > 0).ok_or_else(|| format!("{text:?} is out of range"))?;
    Ok(Duration::from_secs(seconds))
}

pub(crate) async fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Keygen { out } => keygen(&out),
        Command::Issue { org_key, subject, roles, expires, serial, out } => {
            let org = load(&org_key)?;
            let now = SystemTime::now();
            let not_after = now.checked_add(expires).ok_or_else(|| CliError::failure("--expires is out of range"))?;
            let serial = serial.unwrap_or_else(|| unix_s(now));
            let credential = roles.into_iter().fold(Credential::new(subject, now, not_after), Credential::role);
            let signed = org.issue(&credential.serial(serial));
            // Refuse to write what a verifier would refuse (bad roles, ...).
            let shown = show_credential(&signed).map_err(|e| CliError::failure(e.to_string()))?;
            write(&out, &signed.encode())?;
            println!("{shown}");
            Ok(())
        }
        Command::Revoke { org_key, serials, out, send } => {
            let org = load(&org_key)?;
            let signed = org.revoke(serials, SystemTime::now());
            let shown = show_list(&signed).map_err(|e| CliError::failure(e.to_string()))?;
            if let Some(out) = &out {
                write(out, &signed.encode())?;
            }
            match &send.send {
                None => println!("{shown}"),
                Some(addr) => {
                    if out.is_some() {
                        eprintln!("{shown}");
                    }
                    let answer = publish(addr, &send, &org_key, &signed).await?;
                    println!("{answer}");
                }
            }
            Ok(())
        }
        Command::Show { file } => {
            let bytes = std::fs::read(&file).map_err(|e| CliError::failure(format!("{}: {e}", file.display())))?;
            let shown = match SignedCredential::decode(&bytes).and_then(|signed| show_credential(&signed)) {
                Ok(shown) => shown,
                Err(as_credential) => {
                    SignedRevocationList::decode(&bytes).and_then(|signed| show_list(&signed)).map_err(|as_list| {
                        CliError::failure(format!(
                            "{} is neither a credential ({as_credential}) nor a revocation list ({as_list})",
                            file.display()
                        ))
                    })?
                }
            };
            println!("{shown}");
            Ok(())
        }
    }
}

/// Asks the agent at `addr` the standard `Revocations` with `signed`, as the
/// authority agent of `send.key` (default: the organisation's own key file).
async fn publish(
    addr: &str,
    send: &SendArgs,
    org_key: &Path,
    signed: &SignedRevocationList,
) -> Result<Value, CliError> {
    let builder = with_credentials(tacit::Agent::builder(), &send.credentials)?;
    let connect = ConnectArgs {
        addr: addr.to_owned(),
        expect: send.expect,
        key: Some(send.key.clone().unwrap_or_else(|| org_key.to_path_buf())),
        connect_timeout: send.timeout,
        directory: Vec::new(),
        mdns: false,
        dns: Vec::new(),
        dns_server: Vec::new(),
    };
    let connection = connect::dial(&connect, builder, send.expect).await?;
    let request = Revocations { signed_list: signed.encode().into() };
    let options = AskOptions::default().deadline(send.timeout);
    let asking = async { connection.peer.ask_with(request, options).await.map(|reply| reply.message) };
    let answer = connect::bounded(addr, "Revocations", send.timeout + Duration::from_millis(500), asking).await;
    connection.close().await;
    let answer: RevocationsApplied = answer?;
    let org = OrgKey::from_bytes(<[u8; 32]>::try_from(&answer.org_key[..]).unwrap_or_default())
        .map_or_else(|_| String::new(), |key| key.to_string());
    let status = match answer.status() {
        revocations_applied::Status::Applied => "applied",
        revocations_applied::Status::Stale => "stale",
        revocations_applied::Status::Unspecified => "unspecified",
    };
    Ok(json!({
        "status": status,
        "org": org,
        "issued_at_unix_s": answer.issued_at_unix_s,
        "serials": answer.serials,
    }))
}

/// Adds the credentials in `paths` (`tacit org issue` files) to `builder`,
/// for an agent to present in its handshakes.
pub(crate) fn with_credentials(
    mut builder: tacit::AgentBuilder,
    paths: &[PathBuf],
) -> Result<tacit::AgentBuilder, CliError> {
    for path in paths {
        builder = builder.credential(read_credential(path)?);
    }
    Ok(builder)
}

/// Reads a credential file (`tacit org issue` output).
pub(crate) fn read_credential(path: &Path) -> Result<SignedCredential, CliError> {
    let bytes = std::fs::read(path).map_err(|e| CliError::failure(format!("{}: {e}", path.display())))?;
    SignedCredential::decode(&bytes)
        .map_err(|e| CliError::failure(format!("{} is not a credential: {e}", path.display())))
}

fn keygen(out: &Path) -> Result<(), CliError> {
    if out.symlink_metadata().is_ok() {
        return Err(CliError::failure(format!(
            "{} already exists; tacit org keygen never overwrites a key file",
            out.display()
        )));
    }
    let org = OrgSigner::load_or_create(out).map_err(|e| CliError::failure(e.to_string()))?;
    eprintln!("wrote a new organisation key to {} (keep it private)", out.display());
    println!("{}", org.org_key());
    Ok(())
}

fn load(path: &Path) -> Result<OrgSigner, CliError> {
    OrgSigner::load(path).map_err(|e| CliError::failure(e.to_string()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, bytes).map_err(|e| CliError::failure(format!("{}: {e}", path.display())))
}

fn unix_s(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn show_credential(signed: &SignedCredential) -> Result<Value, CredentialError> {
    let (org, c) = signed.credential()?;
    Ok(json!({
        "kind": "credential",
        "org": org.to_string(),
        "subject": c.subject.to_string(),
        "roles": c.roles,
        "not_before_unix_s": unix_s(c.not_before),
        "not_after_unix_s": unix_s(c.not_after),
        "intents": c.intents.map(|ids| ids.iter().map(ToString::to_string).collect::<Vec<_>>()),
        "serial": c.serial,
    }))
}

fn show_list(signed: &SignedRevocationList) -> Result<Value, CredentialError> {
    let list = signed.list()?;
    Ok(json!({
        "kind": "revocation_list",
        "org": list.org.to_string(),
        "issued_at_unix_s": list.issued_at,
        "serials": list.serials,
    }))
}
