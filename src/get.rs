//! `skiff get`: list or fetch objects and print them as a kubectl-like table, YAML, JSON
//! or names; `-w` keeps printing changes as watch events arrive.

use std::io::Write as _;

use anyhow::bail;
use clap::Args;
use futures::StreamExt;
use serde_json::Value;
use skiff_api::registry::{self, Resource};
use skiff_client::{ListParams, WatchEvent};

use crate::cli_common::{self, AlreadyReported, ClientArgs, Conn, meta_str, object_ref};
use crate::output::{self, OutputFormat, Table};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  skiff get pods\n  skiff get deploy web -o yaml\n  skiff get pods -A -l app=web\n  skiff get all\n  skiff get deployment/web pod/web-1\n  skiff get pods -w"
)]
pub struct GetArgs {
    /// What to get: a kind (pods, po, deploy, deployments.apps, …), several joined by
    /// commas, `all`, or TYPE/NAME
    #[arg(value_name = "KIND")]
    pub kind: String,

    /// Names of the objects to get (every object when none); also TYPE/NAME
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,

    #[command(flatten)]
    pub client: ClientArgs,

    /// List the objects of every namespace (adds a NAMESPACE column)
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,

    /// Only objects whose labels match this selector (e.g. `app=web,tier!=db`)
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Only objects whose fields match this selector (e.g. `status.phase=Running`)
    #[arg(long, value_name = "SELECTOR")]
    pub field_selector: Option<String>,

    /// Output format: wide (more columns), yaml, json, name
    #[arg(short = 'o', long = "output", value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,

    /// After printing, watch for changes and print each (until Ctrl-C)
    #[arg(short = 'w', long)]
    pub watch: bool,

    /// Print tables without their header line
    #[arg(long)]
    pub no_headers: bool,
}

/// What was asked for, resolved.
enum Request {
    /// Every object (matching the selectors) of these kinds.
    List(Vec<&'static Resource>),
    /// These objects.
    Named(Vec<(&'static Resource, String)>),
}

fn parse_request(args: &GetArgs) -> anyhow::Result<Request> {
    if args.kind.contains('/') {
        let mut named = Vec::new();
        for a in std::iter::once(&args.kind).chain(&args.names) {
            match cli_common::split_type_name(a)? {
                Some(pair) => named.push(pair),
                None => bail!(
                    "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'skiff get resource/<resource_name>' instead of 'skiff get resource resource/<resource_name>')"
                ),
            }
        }
        return Ok(Request::Named(named));
    }
    let kinds: Vec<&'static Resource> = if args.kind == "all" {
        registry::all()
            .iter()
            .copied()
            .filter(|r| r.categories.contains(&"all"))
            .collect()
    } else {
        let mut kinds = Vec::new();
        for k in args.kind.split(',').filter(|k| !k.is_empty()) {
            let r = cli_common::resolve_kind(k)?;
            if !kinds.iter().any(|x: &&Resource| std::ptr::eq(*x, r)) {
                kinds.push(r);
            }
        }
        kinds
    };
    if kinds.is_empty() {
        bail!("you must specify the type of resource to get");
    }
    if args.names.is_empty() {
        return Ok(Request::List(kinds));
    }
    if kinds.len() > 1 {
        bail!("names can only be given for one kind (or use TYPE/NAME arguments)");
    }
    if args.names.iter().any(|n| n.contains('/')) {
        bail!(
            "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form"
        );
    }
    Ok(Request::Named(
        args.names.iter().map(|n| (kinds[0], n.clone())).collect(),
    ))
}

/// Objects grouped by kind, in the order asked.
type Groups = Vec<(&'static Resource, Vec<Value>)>;

fn push(groups: &mut Groups, r: &'static Resource, obj: Value) {
    match groups.iter_mut().find(|(k, _)| std::ptr::eq(*k, r)) {
        Some((_, items)) => items.push(obj),
        None => groups.push((r, vec![obj])),
    }
}

pub async fn run(args: GetArgs) -> anyhow::Result<()> {
    let request = parse_request(&args)?;
    let conn = args.client.connect()?;
    let list_ns = (!args.all_namespaces).then_some(conn.namespace.as_str());
    let params = ListParams {
        label_selector: args.selector.clone(),
        field_selector: args.field_selector.clone(),
        ..Default::default()
    };

    let mut groups: Groups = Vec::new();
    let mut failed = false;
    let mut list_rv = None;
    let named = matches!(request, Request::Named(_));
    match &request {
        Request::List(kinds) => {
            for r in kinds {
                let list = conn.client.list(r, list_ns, &params).await?;
                list_rv = list
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let items = list
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                groups.push((r, items));
            }
        }
        Request::Named(pairs) => {
            for (r, name) in pairs {
                match conn.client.get(r, Some(&conn.namespace), name).await {
                    Ok(obj) => push(&mut groups, r, obj),
                    Err(e) => {
                        failed = true;
                        cli_common::print_error(&e.into());
                    }
                }
            }
        }
    }

    let kinds_asked = match &request {
        Request::List(k) => k.len(),
        Request::Named(p) => {
            let mut ks: Vec<&Resource> = Vec::new();
            for (r, _) in p {
                if !ks.iter().any(|k| std::ptr::eq(*k, *r)) {
                    ks.push(r);
                }
            }
            ks.len()
        }
    };
    let mut tables = print(&args, &conn, &groups, named, kinds_asked > 1)?;

    if args.watch {
        let (r, names) = match &request {
            Request::List(kinds) if kinds.len() == 1 => (kinds[0], Vec::new()),
            Request::Named(pairs)
                if !pairs.is_empty() && pairs.iter().all(|(r, _)| std::ptr::eq(*r, pairs[0].0)) =>
            {
                (pairs[0].0, pairs.iter().map(|(_, n)| n.clone()).collect())
            }
            _ => bail!("you may only specify a single resource type to watch"),
        };
        if failed {
            return Err(AlreadyReported.into());
        }
        let table = tables.pop().unwrap_or_default();
        watch(&args, &conn, r, list_ns, params, names, list_rv, table).await?;
    }
    if failed {
        return Err(AlreadyReported.into());
    }
    Ok(())
}

/// Prints what was got; returns the tables printed (for `-w` to line up with).
fn print(
    args: &GetArgs,
    conn: &Conn,
    groups: &Groups,
    named: bool,
    prefix_names: bool,
) -> anyhow::Result<Vec<Table>> {
    let total: usize = groups.iter().map(|(_, items)| items.len()).sum();
    let mut out = std::io::stdout().lock();
    let mut tables = Vec::new();
    match args.output {
        None | Some(OutputFormat::Wide) => {
            let wide = args.output == Some(OutputFormat::Wide);
            if total == 0 && !named {
                if args.all_namespaces || groups.iter().all(|(r, _)| !r.namespaced) {
                    eprintln!("No resources found");
                } else {
                    eprintln!("No resources found in {} namespace.", conn.namespace);
                }
            }
            let mut first = true;
            for (r, items) in groups {
                if items.is_empty() && !args.watch {
                    continue;
                }
                let now = jiff::Timestamp::now();
                let mut t = output::table(r, items, wide, args.all_namespaces, now);
                if prefix_names {
                    let col = usize::from(args.all_namespaces);
                    let name_col = t.headers.iter().position(|h| h == "NAME").unwrap_or(col);
                    for (row, item) in t.rows.iter_mut().zip(items) {
                        if let Some(cell) = row.get_mut(name_col) {
                            *cell = object_ref(r, meta_str(item, "name").unwrap_or(""));
                        }
                    }
                }
                if !first {
                    writeln!(out)?;
                }
                first = false;
                if items.is_empty() {
                    // `-w` on nothing yet: the header comes with the first row.
                    tables.push(t);
                    continue;
                }
                write!(out, "{}", t.render(args.no_headers))?;
                tables.push(t);
            }
        }
        Some(OutputFormat::Name) => {
            for (r, items) in groups {
                for item in items {
                    writeln!(out, "{}", output::name_line(r, item))?;
                }
            }
        }
        Some(format @ (OutputFormat::Yaml | OutputFormat::Json)) => {
            let value = if named && total == 1 && groups.len() == 1 {
                let (r, items) = &groups[0];
                output::with_type(r, &items[0])
            } else {
                let items = groups
                    .iter()
                    .flat_map(|(r, items)| items.iter().map(|i| output::with_type(r, i)))
                    .collect();
                output::list_of(items)
            };
            if named && total == 0 {
                return Ok(tables);
            }
            match format {
                OutputFormat::Json => writeln!(out, "{}", output::to_json(&value))?,
                _ => write!(out, "{}", output::to_yaml(&value))?,
            }
        }
    }
    out.flush()?;
    Ok(tables)
}

#[allow(clippy::too_many_arguments)]
async fn watch(
    args: &GetArgs,
    conn: &Conn,
    r: &'static Resource,
    ns: Option<&str>,
    mut params: ListParams,
    names: Vec<String>,
    mut resource_version: Option<String>,
    mut table: Table,
) -> anyhow::Result<()> {
    if names.len() == 1 {
        let by_name = format!("metadata.name={}", names[0]);
        params.field_selector = Some(match params.field_selector.take() {
            Some(f) if !f.is_empty() => format!("{f},{by_name}"),
            _ => by_name,
        });
    }
    let ns = if names.is_empty() {
        ns
    } else {
        Some(conn.namespace.as_str())
    };
    let wide = args.output == Some(OutputFormat::Wide);
    let mut header_printed = !table.rows.is_empty() || args.no_headers;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        if resource_version.is_none() {
            let list = conn.client.list(r, ns, &params).await?;
            resource_version = list
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        let watch_params = ListParams {
            resource_version: resource_version.clone(),
            allow_watch_bookmarks: true,
            ..params.clone()
        };
        let mut events = conn.client.watch(r, ns, &watch_params).await?;
        loop {
            let ev = tokio::select! {
                _ = &mut ctrl_c => return Ok(()),
                ev = events.next() => ev,
            };
            let ev = match ev {
                None => break,
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(WatchEvent::Error(e))) if e.is_gone() => {
                    // Too old: start again from a fresh list.
                    resource_version = None;
                    break;
                }
                Some(Ok(WatchEvent::Error(e))) => return Err(e.into()),
                Some(Ok(ev)) => ev,
            };
            let Some(obj) = ev.object() else { continue };
            if let Some(rv) = meta_str(obj, "resourceVersion") {
                resource_version = Some(rv.to_string());
            }
            if matches!(ev, WatchEvent::Bookmark(_)) {
                continue;
            }
            if !names.is_empty()
                && !names
                    .iter()
                    .any(|n| Some(n.as_str()) == meta_str(obj, "name"))
            {
                continue;
            }
            let mut out = std::io::stdout().lock();
            match args.output {
                None | Some(OutputFormat::Wide) => {
                    let now = jiff::Timestamp::now();
                    let row = output::table_row(r, obj, wide, args.all_namespaces, now);
                    if !header_printed {
                        // Nothing was listed: the header comes with the first row.
                        table.rows.push(row);
                        write!(out, "{}", table.render(false))?;
                        header_printed = true;
                    } else {
                        write!(out, "{}", table.render_row(&row))?;
                    }
                }
                Some(OutputFormat::Name) => writeln!(out, "{}", output::name_line(r, obj))?,
                Some(OutputFormat::Json) => {
                    writeln!(out, "{}", output::to_json(&output::with_type(r, obj)))?
                }
                Some(OutputFormat::Yaml) => {
                    write!(out, "---\n{}", output::to_yaml(&output::with_type(r, obj)))?
                }
            }
            out.flush()?;
        }
    }
}
