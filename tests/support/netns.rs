//! Network namespaces that a test creates: each one a "machine" of its own, joined to the root
//! namespace (where nginx and the test run) by a veth pair, with addresses the test owns.
//!
//! Namespace `N` gets the /30 `10.213.N.0/30` (`FCGI_MH_NET`): `10.213.N.1` on the root side
//! of the pair, `10.213.N.2` inside, so the two ends are each other's only neighbours and no
//! route, forwarding or firewall rule of the machine is involved. Traffic goes only to those
//! addresses. [`Netns`] removes its namespace and its pair when dropped, a failing test
//! included; namespaces a killed test left behind (their names carry the test's pid) are
//! removed by the next test that creates one.
//!
//! This needs root and a working `ip netns` (iproute2, installed by tests/deps.sh); when
//! either is missing, [`Netns::create`] says why, and the tests skip with that message.

use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, Once};

/// The first two octets of every address these namespaces use: a private range (RFC 1918)
/// that nothing else in the tests or on a CI machine is expected to use.
pub const FCGI_MH_NET: [u8; 2] = [10, 213];

/// The prefix of the namespaces' names, followed by the test's pid and the index:
/// `fcgi-mh-PID-N`.
const NAME_PREFIX: &str = "fcgi-mh-";

/// The highest index, the third octet: 250 namespaces at once is far more than any test needs.
const MAX_INDEX: u8 = 250;

/// One test thread at a time picks a free index and creates its namespace, so that two tests
/// of one binary never pick the same.
static CREATING: Mutex<()> = Mutex::new(());

/// Removes stale namespaces once per test process.
static STALE_REMOVED: Once = Once::new();

/// A network namespace with one veth pair to the root namespace; removed when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
    index: u8,
    root_link: String,
}

impl Netns {
    /// Creates a namespace with its pair and addresses, or says why it cannot (not root, no
    /// `ip`, no namespace support), for the test to skip with that reason.
    pub fn create() -> Result<Netns, String> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err("network namespaces need root (CI runs the tests as root)".into());
        }
        ip(&["-V"]).map_err(|e| format!("no usable `ip` command (iproute2): {e}"))?;
        let _one_at_a_time = CREATING.lock().unwrap_or_else(|p| p.into_inner());
        STALE_REMOVED.call_once(remove_stale);
        let index = free_index()?;
        let name = format!("{NAME_PREFIX}{}-{index}", std::process::id());
        ip(&["netns", "add", &name]).map_err(|e| format!("`ip netns add` does not work: {e}"))?;
        // From here on, dropping `ns` removes whatever was made.
        let ns = Netns { name, index, root_link: format!("fcgimh{index}") };
        ns.set_up().map_err(|e| format!("cannot set up namespace {}: {e}", ns.name))?;
        Ok(ns)
    }

    fn set_up(&self) -> Result<(), String> {
        let inner = format!("fcgimh{}p", self.index);
        let (root_cidr, host_cidr) =
            (format!("{}/30", self.root_ip()), format!("{}/30", self.ip()));
        let n = self.name.as_str();
        ip(&["link", "add", &self.root_link, "type", "veth", "peer", "name", &inner, "netns", n])?;
        ip(&["addr", "add", &root_cidr, "dev", &self.root_link])?;
        ip(&["link", "set", &self.root_link, "up"])?;
        ip(&["-n", n, "addr", "add", &host_cidr, "dev", &inner])?;
        ip(&["-n", n, "link", "set", &inner, "up"])?;
        ip(&["-n", n, "link", "set", "lo", "up"])
    }

    /// The namespace's name (`ip netns exec NAME`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address inside the namespace: `10.213.N.2`.
    pub fn ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(FCGI_MH_NET[0], FCGI_MH_NET[1], self.index, 2)
    }

    /// The root namespace's end of the pair, the peer that processes inside see:
    /// `10.213.N.1`.
    pub fn root_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(FCGI_MH_NET[0], FCGI_MH_NET[1], self.index, 1)
    }

    /// `ip netns exec NAME PROGRAM`: a command that runs `program` inside the namespace. `ip`
    /// executes the program in its own place, so the child's pid is the program's.
    pub fn command(&self, program: &Path) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Removing the namespace destroys its end of the pair, and with it the root end; the
        // second command only matters if the namespace was already gone.
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("cannot remove network namespace {}: {e}", self.name);
        }
        if Path::new("/sys/class/net").join(&self.root_link).exists() {
            let _ = ip(&["link", "del", &self.root_link]);
        }
    }
}

/// Runs `ip ARGS`; its standard error on failure.
fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()))
    }
}

/// The lowest index whose root-side link does not exist and whose /30 no interface uses.
fn free_index() -> Result<u8, String> {
    let output = Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .map_err(|e| e.to_string())?;
    let addresses = String::from_utf8_lossy(&output.stdout).into_owned();
    (1..=MAX_INDEX)
        .find(|index| {
            let net = format!(" {}.{}.{index}.", FCGI_MH_NET[0], FCGI_MH_NET[1]);
            !addresses.contains(&net)
                && !Path::new("/sys/class/net").join(format!("fcgimh{index}")).exists()
        })
        .ok_or_else(|| format!("all {MAX_INDEX} test networks are in use"))
}

/// Removes the namespaces that tests which no longer run left behind (killed before their
/// guards ran): `fcgi-mh-PID-N` whose PID is gone.
fn remove_stale() {
    let Ok(entries) = fs::read_dir("/run/netns") else { return };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = stale_owner(&name) {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                eprintln!("removing network namespace {name}, left by test process {pid}");
                let _ = ip(&["netns", "del", &name]);
            }
        }
    }
}

/// The test pid in a namespace name of ours (`fcgi-mh-PID-N`), if it is one.
fn stale_owner(name: &str) -> Option<u32> {
    let (pid, index) = name.strip_prefix(NAME_PREFIX)?.split_once('-')?;
    index.parse::<u8>().ok()?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::stale_owner;

    #[test]
    fn only_names_of_ours_have_an_owner() {
        let cases = [
            ("fcgi-mh-1234-7", Some(1234)),
            ("fcgi-mh-1234-", None),
            ("fcgi-mh-x-7", None),
            ("fcgi-mh-1234-300", None),
            ("other-1234-7", None),
            ("fcgi-mh-", None),
        ];
        for (name, owner) in cases {
            assert_eq!(stale_owner(name), owner, "{name}");
        }
    }
}
