//! `skiff get`: list or fetch objects and print them as kubectl does: the server's Tables
//! (server-side printing: the server computes each kind's columns), or the objects as YAML,
//! JSON or names; `-w` keeps printing changes as watch events arrive.

use std::io::Write as _;

use anyhow::bail;
use clap::Args;
use futures::StreamExt;
use serde_json::Value;
use skiff_api::registry::{self, Resource};
use skiff_client::table::cell_text;
use skiff_client::{IncludeObject, ListParams, TableColumn, TableRow, WatchEvent};

use crate::cli_common::{self, AlreadyReported, ClientArgs, Conn, meta_str, object_ref};
use crate::output::{self, OutputFormat};

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

    /// Add a LABELS column to tables
    #[arg(long)]
    pub show_labels: bool,
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

/// The server's Tables grouped by kind, in the order asked.
type Tables = Vec<(&'static Resource, skiff_client::Table)>;

fn push_table(tables: &mut Tables, r: &'static Resource, t: skiff_client::Table) {
    match tables.iter_mut().find(|(k, _)| std::ptr::eq(*k, r)) {
        Some((_, have)) => {
            if have.column_definitions.is_empty() {
                have.column_definitions = t.column_definitions;
            }
            have.rows.extend(t.rows);
        }
        None => tables.push((r, t)),
    }
}

/// Whether `-o` asks for the server's Tables (the default, and `wide`).
fn tabular(args: &GetArgs) -> bool {
    matches!(args.output, None | Some(OutputFormat::Wide))
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

    let mut failed = false;
    let mut list_rv = None;
    let named = matches!(request, Request::Named(_));
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
    let mut printed = Vec::new();
    if tabular(&args) {
        let mut tables: Tables = Vec::new();
        match &request {
            Request::List(kinds) => {
                for r in kinds {
                    let t = conn
                        .client
                        .list_table(r, list_ns, &params, IncludeObject::Metadata)
                        .await?;
                    list_rv = t.resource_version().map(str::to_string);
                    tables.push((r, t));
                }
            }
            Request::Named(pairs) => {
                for (r, name) in pairs {
                    match conn
                        .client
                        .get_table(r, Some(&conn.namespace), name, IncludeObject::Metadata)
                        .await
                    {
                        Ok(t) => push_table(&mut tables, r, t),
                        Err(e) => {
                            failed = true;
                            cli_common::print_error(&e.into());
                        }
                    }
                }
            }
        }
        printed = print_tables(&args, &conn, &tables, named, kinds_asked > 1)?;
    } else {
        let mut groups: Groups = Vec::new();
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
        print_objects(&args, &groups, named)?;
    }

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
        let view = printed
            .pop()
            .unwrap_or_else(|| View::new(&args, r, &[], false));
        watch(&args, &conn, r, list_ns, params, names, list_rv, view).await?;
    }
    if failed {
        return Err(AlreadyReported.into());
    }
    Ok(())
}

/// How one kind's Tables print: which of the server's columns, the extra ones kubectl
/// adds (NAMESPACE first with `-A`, LABELS last with `--show-labels`), and the aligned
/// text (which `-w` keeps lining up with).
struct View {
    r: &'static Resource,
    /// The server's columns printed, by index into the cells.
    shown: Vec<usize>,
    /// The column naming the object, printed as TYPE/NAME when several kinds are printed.
    name_col: Option<usize>,
    prefix_names: bool,
    namespace: bool,
    labels: bool,
    text: output::Table,
}

impl View {
    fn new(
        args: &GetArgs,
        r: &'static Resource,
        columns: &[TableColumn],
        prefix_names: bool,
    ) -> View {
        let mut v = View {
            r,
            shown: Vec::new(),
            name_col: None,
            prefix_names,
            // As kubectl: no NAMESPACE column for cluster-scoped kinds, even with -A.
            namespace: args.all_namespaces && r.namespaced,
            labels: args.show_labels,
            text: output::Table::default(),
        };
        v.set_columns(columns, args.output == Some(OutputFormat::Wide));
        v
    }

    fn has_columns(&self) -> bool {
        !self.shown.is_empty()
    }

    /// Takes the server's column definitions: priority 0, or any with `-o wide`.
    fn set_columns(&mut self, columns: &[TableColumn], wide: bool) {
        self.shown = (0..columns.len())
            .filter(|&i| wide || columns[i].priority == 0)
            .collect();
        self.name_col = columns.iter().position(|c| c.format == "name");
        let mut headers = Vec::new();
        if self.namespace {
            headers.push("NAMESPACE".to_string());
        }
        headers.extend(self.shown.iter().map(|&i| columns[i].name.to_uppercase()));
        if self.labels {
            headers.push("LABELS".to_string());
        }
        self.text = output::Table::new(headers);
    }

    fn cells(&self, row: &TableRow) -> Vec<String> {
        let mut cells = Vec::with_capacity(self.shown.len() + 2);
        if self.namespace {
            cells.push(row.namespace().unwrap_or("").to_string());
        }
        for &i in &self.shown {
            let text = row.cells.get(i).map(cell_text).unwrap_or_default();
            cells.push(match (self.prefix_names, self.name_col) {
                (true, Some(n)) if n == i => object_ref(self.r, row.name().unwrap_or(&text)),
                _ => text,
            });
        }
        if self.labels {
            cells.push(row.labels_text());
        }
        cells
    }
}

/// Prints the Tables got; returns how each printed (for `-w` to line up with).
fn print_tables(
    args: &GetArgs,
    conn: &Conn,
    tables: &Tables,
    named: bool,
    prefix_names: bool,
) -> anyhow::Result<Vec<View>> {
    let total: usize = tables.iter().map(|(_, t)| t.rows.len()).sum();
    let mut out = std::io::stdout().lock();
    let mut views = Vec::new();
    if total == 0 && !named {
        if args.all_namespaces || tables.iter().all(|(r, _)| !r.namespaced) {
            eprintln!("No resources found");
        } else {
            eprintln!("No resources found in {} namespace.", conn.namespace);
        }
    }
    let mut first = true;
    for (r, t) in tables {
        if t.rows.is_empty() && !args.watch {
            continue;
        }
        let mut view = View::new(args, r, &t.column_definitions, prefix_names);
        if !first {
            writeln!(out)?;
        }
        first = false;
        if t.rows.is_empty() {
            // `-w` on nothing yet: the header comes with the first row.
            views.push(view);
            continue;
        }
        for row in &t.rows {
            let cells = view.cells(row);
            view.text.rows.push(cells);
        }
        write!(out, "{}", view.text.render(args.no_headers))?;
        views.push(view);
    }
    out.flush()?;
    Ok(views)
}

/// Prints the objects got as names, YAML or JSON.
fn print_objects(args: &GetArgs, groups: &Groups, named: bool) -> anyhow::Result<()> {
    let total: usize = groups.iter().map(|(_, items)| items.len()).sum();
    let mut out = std::io::stdout().lock();
    match args.output {
        None | Some(OutputFormat::Wide) => {}
        Some(OutputFormat::Name) => {
            for (r, items) in groups {
                for item in items {
                    writeln!(out, "{}", output::name_line(r, item))?;
                }
            }
        }
        Some(format @ (OutputFormat::Yaml | OutputFormat::Json)) => {
            if named && total == 0 {
                return Ok(());
            }
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
            match format {
                OutputFormat::Json => writeln!(out, "{}", output::to_json(&value))?,
                _ => write!(out, "{}", output::to_yaml(&value))?,
            }
        }
    }
    out.flush()?;
    Ok(())
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
    mut view: View,
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
    let tables = tabular(args);
    let wide = args.output == Some(OutputFormat::Wide);
    let mut header_printed = !view.text.rows.is_empty() || args.no_headers;
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
        let mut events = if tables {
            conn.client
                .watch_table(r, ns, &watch_params, IncludeObject::Metadata)
                .await?
        } else {
            conn.client.watch(r, ns, &watch_params).await?
        };
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
            // A Table event's metadata carries its object's resourceVersion too.
            if let Some(rv) = meta_str(obj, "resourceVersion") {
                resource_version = Some(rv.to_string());
            }
            if matches!(ev, WatchEvent::Bookmark(_)) {
                continue;
            }
            let mut out = std::io::stdout().lock();
            if tables {
                let t = skiff_client::Table::from_value(obj.clone())?;
                if !view.has_columns() && !t.column_definitions.is_empty() {
                    view.set_columns(&t.column_definitions, wide);
                }
                for row in &t.rows {
                    if !names.is_empty() && !names.iter().any(|n| Some(n.as_str()) == row.name()) {
                        continue;
                    }
                    let cells = view.cells(row);
                    if !header_printed {
                        // Nothing was listed: the header comes with the first row.
                        view.text.rows.push(cells);
                        write!(out, "{}", view.text.render(false))?;
                        header_printed = true;
                    } else {
                        write!(out, "{}", view.text.render_row(&cells))?;
                    }
                }
                out.flush()?;
                continue;
            }
            if !names.is_empty()
                && !names
                    .iter()
                    .any(|n| Some(n.as_str()) == meta_str(obj, "name"))
            {
                continue;
            }
            match args.output {
                None | Some(OutputFormat::Wide) => {}
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
