// Every string the page shows, in pt-BR (the default, the seed's wording) and English.
// index.html marks its static text with data-i18n="key"; code calls t("key", {vars}).

const PT = {
  doc_title: "Dados ERP · erpsync",
  skip: "Ir para o conteúdo",
  crumbs: "Configurações CRM › Integração",
  title: "Dados ERP",
  intro:
    "Relatório com visão detalhada de todas as requisições recebidas nos endpoints e seus responses. Escolha o período e a tabela que deseja analisar o status da Integração, e clique em exportar.",
  "lang.label": "Idioma",
  logout: "Sair",
  "session.tenant": "Tenant: {tenant}",
  loading: "Carregando…",
  working: "Processando…",
  saving: "Salvando…",
  saved: "Salvo",
  save: "Salvar",
  cancel: "Cancelar",
  close: "Fechar",
  more: "Carregar mais",
  yes: "Sim",
  no: "Não",
  never: "nunca",
  not_informed: "não informado",
  not_scheduled: "não agendada",
  no_runs_yet: "sem execuções ainda",

  "login.title": "Entrar",
  "login.help": "Cole um token de papel crm emitido para o tenant (erpsync token issue --role crm).",
  "login.tenant": "Tenant",
  "login.token": "Token",
  "login.submit": "Entrar",
  "login.missing": "Informe o tenant e o token.",

  "err.unauthenticated": "Token inválido, revogado ou ausente: entre novamente com um token crm válido.",
  "err.permission_denied": "Este token não dá acesso ao tenant {tenant}: use um token de papel crm emitido para ele.",
  "err.unavailable": "O servidor erpsync não respondeu (indisponível). Tente de novo em instantes.",
  "err.deadline": "O servidor demorou demais para responder. Tente de novo.",
  "err.other": "Erro {code}: {message}",
  "err.banner": "{message} ({code})",
  "err.descriptors": "Não foi possível carregar a descrição da API (erpsync.binpb): {error}",

  "alerts.title": "Alertas abertos",
  "alert.STALE": "Sem integração com sucesso há mais tempo que o permitido.",
  "alert.FAILING": "A última integração falhou.",
  "alert.DELETES_HELD": "Exclusões retidas aguardam aprovação.",
  "alert.ABC_SHIFT_HELD": "Nova classificação ABC retida aguarda aprovação.",
  "alert.UNSPECIFIED": "Alerta.",
  "alert.since": "desde {when}",
  "alert.see_deletes": "Ver Excessivos Deletes",
  "alert.see_abc": "Ver Curva ABC",
  "alert.see_run": "Ver execução",

  "tabs.label": "Seções de Dados ERP",
  "tab.geral": "Informações Gerais",
  "tab.historico": "Histórico",
  "tab.abc": "Curva ABC",

  "f.integration_type": "Tipo de integração",
  "f.database_size": "Tamanho do banco de dados da integração",
  "f.erp": "ERP / Versão do ERP",
  "f.deployment_status": "Situação da implantação",
  "f.active": "Ativo",
  "f.scheduled": "Agendado",
  "f.next_run": "Próxima integração agendada",
  "f.average_duration": "Duração média",
  "f.health": "Situação da integração",
  "f.last_success": "Última integração com sucesso",
  "f.business_rule": "Regra de negócio da integração",

  "it.API": "API",
  "it.VIEW": "View",
  "it.UNSPECIFIED": "não definido",
  "ds.NOT_STARTED": "não iniciada",
  "ds.IN_PROGRESS": "em andamento",
  "ds.COMPLETED": "concluída",
  "ds.UNSPECIFIED": "não definida",
  "health.HEALTHY": "saudável",
  "health.STALE": "atrasada",
  "health.FAILING": "com falha",
  "health.INACTIVE": "inativa",
  "health.NEVER_RUN": "nunca executada",
  "health.UNSPECIFIED": "desconhecida",

  "sch.title": "Agendamento",
  "sch.mode": "Como agendar",
  "sch.daily": "Horários diários",
  "sch.cron_mode": "Expressão cron",
  "sch.daily_times": "Agendamento (horários HH:MM, separados por vírgula)",
  "sch.daily_help": "Ex.: 00:00, 12:30 — horário local do fuso abaixo.",
  "sch.cron": "Expressão cron (minuto hora dia mês dia-da-semana)",
  "sch.cron_help": "Ex.: 0 */6 * * 1-5 — a cada 6 horas, de segunda a sexta.",
  "sch.timezone": "Fuso horário",
  "sch.max": "Tempo máximo sem sucesso na integração (horas)",
  "sch.max_help": "Passado esse tempo sem uma integração com sucesso, um alerta é aberto.",
  "sch.err_hours": "Informe um número de horas, por exemplo 24 ou 1,5.",
  "sch.not_saved": "Nada foi alterado: corrija os campos indicados.",

  "recon.title": "Conferência por tabela (última execução)",

  "runs.title": "Log de integrações",
  "runs.help": "Selecione uma linha (clique ou Enter) para ver as etapas, as contagens por tabela e o log da execução.",
  "runs.empty": "Nenhuma execução ainda.",
  "runs.running": "em andamento…",
  "runs.summary": "{received} recebidos, {rejected} rejeitados",
  "runs.open": "ver log",
  "runs.partial": "algo foi retido ou rejeitado",
  sync_now: "Sincronizar agora",
  "sync.starting": "Iniciando a sincronização…",
  "sync.started": "Sincronização iniciada.",
  "sync.already": "Já havia uma sincronização em andamento: acompanhando-a.",

  "col.date": "Data",
  "col.status": "Status",
  "col.log": "Log",
  "col.table": "Tabela",
  "col.description": "Descrição",
  "col.stage": "Etapa",
  "col.duration": "Duração",
  "col.outcome": "Resultado",
  "col.received": "Recebidos",
  "col.inserted": "Inseridos",
  "col.updated": "Atualizados",
  "col.deleted": "Excluídos",
  "col.held": "Retidos",
  "col.rejected": "Rejeitados",
  "col.erp": "ERP",
  "col.staged": "Intermediário",
  "col.crm": "CRM",
  "col.external_id": "ID externo",
  "col.name": "Nome",
  "col.document": "Documento",
  "col.detected": "Detectada em",
  "col.state": "Situação",
  "col.class": "Classe",
  "col.companies": "Empresas",
  "col.revenue": "Receita",
  "col.share": "Participação",
  "col.abc_change": "Classe ABC",
  "col.lifecycle_change": "Ciclo de vida",
  "col.run": "Execução",

  "rs.RUNNING": "Em andamento",
  "rs.SUCCESS": "Sucesso",
  "rs.PARTIAL": "Parcial",
  "rs.FAILED": "Erro",
  "rs.INTERRUPTED": "Interrompida",
  "rs.UNSPECIFIED": "Desconhecido",
  "trigger.SCHEDULE": "agendamento",
  "trigger.MANUAL": "manual (Sincronizar agora)",
  "trigger.RETRY": "nova tentativa",
  "trigger.UNSPECIFIED": "desconhecida",

  "run.title": "Execução {id}",
  "run.status": "Status",
  "run.trigger": "Origem",
  "run.started": "Início",
  "run.finished": "Fim",
  "run.duration": "Duração",
  "run.not_finished": "em andamento",
  "run.stages": "Etapas",
  "run.tables": "Tabelas",
  "run.log": "Log da execução",
  "run.following": "Acompanhando ao vivo…",
  "run.reconnecting": "Conexão perdida ({error}); reconectando…",
  "run.ended": "Execução terminada: {status}.",
  "run.progress_of": "{done} de {total}",
  "run.progress_done": "{done} feitos",
  "run.no_tables": "As contagens por tabela aparecem quando a execução termina.",
  "run.no_tables_done": "Nenhuma tabela teve registros nesta execução.",
  "stage.collect": "coleta",
  "stage.validate": "validação",
  "stage.delete_guard": "proteção contra exclusões",
  "stage.push": "envio ao CRM",
  "stage.abc": "análise ABC",
  "stage.categorize": "categorização",
  "stage.finish": "finalização",
  "stage.alert": "alerta",
  "level.DEBUG": "DEBUG",
  "level.INFO": "INFO",
  "level.WARN": "AVISO",
  "level.ERROR": "ERRO",
  "level.UNSPECIFIED": "—",

  "hist.title": "Histórico de requisições",
  "hist.period": "Período",
  "hist.from": "Data inicial (dd/mm/aaaa)",
  "hist.to": "Data final (dd/mm/aaaa)",
  "hist.until": "até",
  "hist.all": "todas",
  "hist.download": "Baixar Excel",
  "hist.pick_table": "Selecione ao menos uma tabela.",
  "period.placeholder": "dd/mm/aaaa",
  "period.hint":
    "Período de no máximo {max} dias, até hoje (datas no fuso {tz}). Os últimos {max} dias: de {from} até {to}.",
  "period.err_format": "{which}: use uma data válida no formato dd/mm/aaaa.",
  "period.err_order": "A data final é anterior à data inicial.",
  "period.err_future": "A data final está no futuro: hoje é {today}.",
  "period.err_long": "O período tem {days} dias; o máximo é {max}.",
  "period.the_from": "Data inicial",
  "period.the_to": "Data final",
  "export.starting": "Gerando o arquivo…",
  "export.received": "{size} recebidos ({chunks} partes)…",
  "export.done": "Arquivo {name} salvo ({size}).",
  "export.canceled": "Download cancelado.",
  "export.failed": "O arquivo não foi gerado.",

  "del.title": "Excessivos Deletes",
  "del.help":
    "Exclusões de empresas ou contatos retidas porque uma sincronização tentou excluir registros demais de uma vez. Aprovar: a próxima execução aplica a exclusão no CRM. Descartar: o registro é mantido.",
  "del.table": "Tabela",
  "del.company": "empresas",
  "del.contact": "contatos",
  "del.export": "Exportar",
  "del.export_help": "A exportação usa o período escolhido acima.",
  "del.select_all": "Selecionar todas",
  "del.select_one": "Selecionar {name}",
  "del.empty": "Nenhuma exclusão retida.",
  "del.approve": "Aprovar selecionadas",
  "del.discard": "Descartar selecionadas",
  "del.pick": "Selecione ao menos uma exclusão.",
  "del.approved": "Exclusões aprovadas: {n}. A próxima execução as aplica.",
  "del.discarded": "Exclusões descartadas: {n}. Os registros foram mantidos.",
  "del.state.HELD": "retida",
  "del.state.APPROVED": "aprovada (aguarda a próxima execução)",
  "del.state.APPLIED": "aplicada",
  "del.state.DISCARDED": "descartada",
  "del.state.SUPERSEDED": "substituída (o ERP reenviou)",

  "abc.title": "Curva ABC (Pareto)",
  "abc.chart_title": "Curva ABC: participação acumulada na receita por participação das empresas",
  "abc.chart_desc": "Curva de Pareto com {n} pontos. Classe A: {a} empresas, B: {b}, C: {c}.",
  "abc.x_axis": "% das empresas (por receita)",
  "abc.y_axis": "% da receita acumulada",
  "abc.limit": "{cls} até {v}%",
  "abc.counts": "Empresas por classe",
  "abc.no_class": "Sem classe",
  "abc.none": "Ainda não há análise ABC: ela é feita na primeira execução com sucesso.",
  "abc.basis_invoice": "notas fiscais",
  "abc.basis_order": "pedidos",
  "abc.summary":
    "Receita de {basis} de {from} a {to}; A até {a}%, B até {b}%. {companies} empresas categorizadas em {when}; {changed} de {compared} mudaram de classe.",
  "abc.shift_title": "Nova classificação retida",
  "abc.shift_text":
    "A execução {run} calculou uma nova classificação ABC e ela foi retida: mais de {percent}% das empresas mudariam de classe de uma vez. Até ser aprovada, vale a classificação anterior (abaixo).",
  "abc.shift_approve": "Aprovar nova classificação",
  "abc.shift_reject": "Rejeitar",
  "abc.shift_approved": "Nova classificação aplicada; empresas que mudaram de classe: {n}.",
  "abc.shift_rejected": "Nova classificação rejeitada: a anterior continua valendo.",

  "co.title": "Empresas",
  "co.search": "Buscar empresa (nome, documento ou ID externo)",
  "co.class": "Classe",
  "co.any": "Todas",
  "co.none": "Sem classe",
  "co.go": "Buscar",
  "co.more": "Continuar buscando",
  "co.searching": "Buscando…",
  "co.found": "Encontradas: {n} ({scanned} verificadas).",
  "co.none_found": "Nenhuma empresa encontrada.",
  "co.none_yet": "Nenhuma encontrada nas {n} primeiras empresas; continue buscando.",
  "co.class_n": "classe {cls}",
  "co.history": "Histórico de categorização",
  "co.trace": "Rastreamento do registro",
  "co.current": "Classe {cls}, {life}, carteira {portfolio}, receita {revenue}.",
  "co.purchases": "Primeira compra {first}, última {last}.",
  "co.unassigned": "sem vendedor",
  "co.not_categorized": "Esta empresa não está categorizada hoje.",
  "co.no_changes": "Nenhuma mudança de categoria registrada.",
  "life.PROSPECT": "prospect",
  "life.NEW": "novo",
  "life.ACTIVE": "ativo",
  "life.AT_RISK": "em risco",
  "life.INACTIVE": "inativo",
  "life.UNSPECIFIED": "—",
  "trace.unavailable": "O rastreamento de registros (GetRecordTrace) não está disponível neste servidor.",

  "table.company": "Empresa",
  "table.contact": "Contato",
  "table.quote": "Cotação",
  "table.quote_item": "Itens cotação",
  "table.order": "Pedido",
  "table.order_item": "Itens pedido",
  "table.invoice": "Nota",
  "table.invoice_item": "Itens nota",
  "table.receivable": "Fatura",
  "table.supplier": "Fornecedor",
  "table.seller": "Vendedor",
  "table.company_brand": "Empresa marca",
  // The seed's descriptions (ListTables describes the tables in English).
  "table_desc.company": "Clientes pessoa jurídica interessantes ao CRM.",
  "table_desc.contact": "Clientes pessoa física interessantes ao CRM.",
  "table_desc.quote": "Cotações feitas para os clientes.",
  "table_desc.quote_item": "Itens incluídos nas cotações geradas.",
  "table_desc.order": "Pedidos dos clientes interessantes ao CRM nos últimos 2 anos.",
  "table_desc.order_item": "Itens de pedidos dos clientes interessantes ao CRM nos últimos 2 anos.",
  "table_desc.invoice": "Notas fiscais dos clientes interessantes ao CRM nos últimos 2 anos.",
  "table_desc.invoice_item": "Itens das notas fiscais dos clientes interessantes ao CRM nos últimos 2 anos.",
  "table_desc.receivable": "Duplicatas abertas dos clientes.",
  "table_desc.supplier": "Fornecedores para uso em tarefas de procedimentos.",
  "table_desc.seller": "Vendedores.",
  "table_desc.company_brand": "View para relacionar a empresa à situação comercial com as marcas.",
};

const EN = {
  doc_title: "ERP data · erpsync",
  skip: "Skip to content",
  crumbs: "CRM settings › Integration",
  title: "ERP data",
  intro:
    "A detailed view of every request received on the endpoints and its response. Choose the period and the tables whose integration status you want to analyse, and export.",
  "lang.label": "Language",
  logout: "Sign out",
  "session.tenant": "Tenant: {tenant}",
  loading: "Loading…",
  working: "Working…",
  saving: "Saving…",
  saved: "Saved",
  save: "Save",
  cancel: "Cancel",
  close: "Close",
  more: "Load more",
  yes: "Yes",
  no: "No",
  never: "never",
  not_informed: "not set",
  not_scheduled: "not scheduled",
  no_runs_yet: "no runs yet",

  "login.title": "Sign in",
  "login.help": "Paste a token of role crm issued for the tenant (erpsync token issue --role crm).",
  "login.tenant": "Tenant",
  "login.token": "Token",
  "login.submit": "Sign in",
  "login.missing": "Enter the tenant and the token.",

  "err.unauthenticated": "The token is invalid, revoked or missing: sign in again with a valid crm token.",
  "err.permission_denied": "This token does not give access to tenant {tenant}: use a token of role crm issued for it.",
  "err.unavailable": "The erpsync server did not answer (unavailable). Try again in a moment.",
  "err.deadline": "The server took too long to answer. Try again.",
  "err.other": "Error {code}: {message}",
  "err.banner": "{message} ({code})",
  "err.descriptors": "Could not load the API description (erpsync.binpb): {error}",

  "alerts.title": "Open alerts",
  "alert.STALE": "No successful integration for longer than allowed.",
  "alert.FAILING": "The last integration failed.",
  "alert.DELETES_HELD": "Held deletions wait for approval.",
  "alert.ABC_SHIFT_HELD": "A held ABC classification waits for approval.",
  "alert.UNSPECIFIED": "Alert.",
  "alert.since": "since {when}",
  "alert.see_deletes": "See excessive deletes",
  "alert.see_abc": "See ABC curve",
  "alert.see_run": "See run",

  "tabs.label": "ERP data sections",
  "tab.geral": "General information",
  "tab.historico": "History",
  "tab.abc": "ABC curve",

  "f.integration_type": "Integration type",
  "f.database_size": "Integration database size",
  "f.erp": "ERP / ERP version",
  "f.deployment_status": "Deployment status",
  "f.active": "Active",
  "f.scheduled": "Scheduled",
  "f.next_run": "Next scheduled integration",
  "f.average_duration": "Average duration",
  "f.health": "Integration health",
  "f.last_success": "Last successful integration",
  "f.business_rule": "Integration business rule",

  "it.API": "API",
  "it.VIEW": "View",
  "it.UNSPECIFIED": "not set",
  "ds.NOT_STARTED": "not started",
  "ds.IN_PROGRESS": "in progress",
  "ds.COMPLETED": "completed",
  "ds.UNSPECIFIED": "not set",
  "health.HEALTHY": "healthy",
  "health.STALE": "stale",
  "health.FAILING": "failing",
  "health.INACTIVE": "inactive",
  "health.NEVER_RUN": "never run",
  "health.UNSPECIFIED": "unknown",

  "sch.title": "Schedule",
  "sch.mode": "How to schedule",
  "sch.daily": "Daily times",
  "sch.cron_mode": "Cron expression",
  "sch.daily_times": "Schedule (HH:MM times, comma separated)",
  "sch.daily_help": "E.g. 00:00, 12:30 — local time in the zone below.",
  "sch.cron": "Cron expression (minute hour day month weekday)",
  "sch.cron_help": "E.g. 0 */6 * * 1-5 — every 6 hours, Monday to Friday.",
  "sch.timezone": "Time zone",
  "sch.max": "Maximum time without a successful integration (hours)",
  "sch.max_help": "Past this time without a successful integration an alert is opened.",
  "sch.err_hours": "Enter a number of hours, e.g. 24 or 1.5.",
  "sch.not_saved": "Nothing was changed: correct the fields shown.",

  "recon.title": "Per-table check (last run)",

  "runs.title": "Integration log",
  "runs.help": "Select a row (click or Enter) to see the run's stages, per-table counts and log.",
  "runs.empty": "No runs yet.",
  "runs.running": "running…",
  "runs.summary": "{received} received, {rejected} rejected",
  "runs.open": "see log",
  "runs.partial": "something was held or rejected",
  sync_now: "Sync now",
  "sync.starting": "Starting the sync…",
  "sync.started": "Sync started.",
  "sync.already": "A sync was already running: following it.",

  "col.date": "Date",
  "col.status": "Status",
  "col.log": "Log",
  "col.table": "Table",
  "col.description": "Description",
  "col.stage": "Stage",
  "col.duration": "Duration",
  "col.outcome": "Outcome",
  "col.received": "Received",
  "col.inserted": "Inserted",
  "col.updated": "Updated",
  "col.deleted": "Deleted",
  "col.held": "Held",
  "col.rejected": "Rejected",
  "col.erp": "ERP",
  "col.staged": "Staged",
  "col.crm": "CRM",
  "col.external_id": "External id",
  "col.name": "Name",
  "col.document": "Document",
  "col.detected": "Detected",
  "col.state": "State",
  "col.class": "Class",
  "col.companies": "Companies",
  "col.revenue": "Revenue",
  "col.share": "Share",
  "col.abc_change": "ABC class",
  "col.lifecycle_change": "Lifecycle",
  "col.run": "Run",

  "rs.RUNNING": "Running",
  "rs.SUCCESS": "Success",
  "rs.PARTIAL": "Partial",
  "rs.FAILED": "Error",
  "rs.INTERRUPTED": "Interrupted",
  "rs.UNSPECIFIED": "Unknown",
  "trigger.SCHEDULE": "schedule",
  "trigger.MANUAL": "manual (Sync now)",
  "trigger.RETRY": "retry",
  "trigger.UNSPECIFIED": "unknown",

  "run.title": "Run {id}",
  "run.status": "Status",
  "run.trigger": "Trigger",
  "run.started": "Started",
  "run.finished": "Finished",
  "run.duration": "Duration",
  "run.not_finished": "running",
  "run.stages": "Stages",
  "run.tables": "Tables",
  "run.log": "Run log",
  "run.following": "Following live…",
  "run.reconnecting": "Connection lost ({error}); reconnecting…",
  "run.ended": "Run finished: {status}.",
  "run.progress_of": "{done} of {total}",
  "run.progress_done": "{done} done",
  "run.no_tables": "Per-table counts appear when the run finishes.",
  "run.no_tables_done": "No table had records in this run.",
  "stage.collect": "collect",
  "stage.validate": "validate",
  "stage.delete_guard": "delete guard",
  "stage.push": "push to CRM",
  "stage.abc": "ABC analysis",
  "stage.categorize": "categorize",
  "stage.finish": "finish",
  "stage.alert": "alert",
  "level.DEBUG": "DEBUG",
  "level.INFO": "INFO",
  "level.WARN": "WARN",
  "level.ERROR": "ERROR",
  "level.UNSPECIFIED": "—",

  "hist.title": "Request history",
  "hist.period": "Period",
  "hist.from": "From (dd/mm/yyyy)",
  "hist.to": "To (dd/mm/yyyy)",
  "hist.until": "to",
  "hist.all": "all",
  "hist.download": "Download Excel",
  "hist.pick_table": "Select at least one table.",
  "period.placeholder": "dd/mm/yyyy",
  "period.hint": "A period of at most {max} days, up to today (dates in the {tz} zone). The last {max} days: from {from} to {to}.",
  "period.err_format": "{which}: enter a valid date as dd/mm/yyyy.",
  "period.err_order": "The end date is before the start date.",
  "period.err_future": "The end date is in the future: today is {today}.",
  "period.err_long": "The period covers {days} days; the maximum is {max}.",
  "period.the_from": "Start date",
  "period.the_to": "End date",
  "export.starting": "Building the file…",
  "export.received": "{size} received ({chunks} chunks)…",
  "export.done": "File {name} saved ({size}).",
  "export.canceled": "Download cancelled.",
  "export.failed": "The file was not built.",

  "del.title": "Excessive deletes",
  "del.help":
    "Deletions of companies or contacts held back because a sync tried to delete too many at once. Approve: the next run applies the deletion in the CRM. Discard: the record is kept.",
  "del.table": "Table",
  "del.company": "companies",
  "del.contact": "contacts",
  "del.export": "Export",
  "del.export_help": "The export uses the period chosen above.",
  "del.select_all": "Select all",
  "del.select_one": "Select {name}",
  "del.empty": "No held deletions.",
  "del.approve": "Approve selected",
  "del.discard": "Discard selected",
  "del.pick": "Select at least one deletion.",
  "del.approved": "Deletions approved: {n}. The next run applies them.",
  "del.discarded": "Deletions discarded: {n}. The records were kept.",
  "del.state.HELD": "held",
  "del.state.APPROVED": "approved (waits for the next run)",
  "del.state.APPLIED": "applied",
  "del.state.DISCARDED": "discarded",
  "del.state.SUPERSEDED": "superseded (the ERP sent it again)",

  "abc.title": "ABC curve (Pareto)",
  "abc.chart_title": "ABC curve: cumulative revenue share by share of companies",
  "abc.chart_desc": "Pareto curve with {n} points. Class A: {a} companies, B: {b}, C: {c}.",
  "abc.x_axis": "% of companies (by revenue)",
  "abc.y_axis": "% of cumulative revenue",
  "abc.limit": "{cls} up to {v}%",
  "abc.counts": "Companies per class",
  "abc.no_class": "No class",
  "abc.none": "No ABC analysis yet: it comes with the first successful run.",
  "abc.basis_invoice": "invoices",
  "abc.basis_order": "orders",
  "abc.summary":
    "Revenue from {basis} from {from} to {to}; A up to {a}%, B up to {b}%. {companies} companies categorized at {when}; {changed} of {compared} changed class.",
  "abc.shift_title": "New classification held",
  "abc.shift_text":
    "Run {run} computed a new ABC classification and it was held: more than {percent}% of the companies would change class at once. Until it is approved, the previous classification (below) stays in force.",
  "abc.shift_approve": "Approve the new classification",
  "abc.shift_reject": "Reject",
  "abc.shift_approved": "New classification applied; companies that changed class: {n}.",
  "abc.shift_rejected": "New classification rejected: the previous one stays in force.",

  "co.title": "Companies",
  "co.search": "Find a company (name, document or external id)",
  "co.class": "Class",
  "co.any": "All",
  "co.none": "No class",
  "co.go": "Search",
  "co.more": "Keep searching",
  "co.searching": "Searching…",
  "co.found": "Found: {n} ({scanned} checked).",
  "co.none_found": "No company found.",
  "co.none_yet": "None found in the first {n} companies; keep searching.",
  "co.class_n": "class {cls}",
  "co.history": "Category history",
  "co.trace": "Record trace",
  "co.current": "Class {cls}, {life}, portfolio {portfolio}, revenue {revenue}.",
  "co.purchases": "First purchase {first}, last {last}.",
  "co.unassigned": "no seller",
  "co.not_categorized": "This company is not categorized today.",
  "co.no_changes": "No category change recorded.",
  "life.PROSPECT": "prospect",
  "life.NEW": "new",
  "life.ACTIVE": "active",
  "life.AT_RISK": "at risk",
  "life.INACTIVE": "inactive",
  "life.UNSPECIFIED": "—",
  "trace.unavailable": "Record trace (GetRecordTrace) is not available on this server.",

  "table.company": "Company",
  "table.contact": "Contact",
  "table.quote": "Quote",
  "table.quote_item": "Quote items",
  "table.order": "Order",
  "table.order_item": "Order items",
  "table.invoice": "Invoice",
  "table.invoice_item": "Invoice items",
  "table.receivable": "Receivable",
  "table.supplier": "Supplier",
  "table.seller": "Seller",
  "table.company_brand": "Company brand",
};

/** Both dictionaries, for the consistency test. */
export const DICTIONARIES = { "pt-BR": PT, en: EN };

const STORE = "erpsync.lang";
let current = "pt-BR";
let select = null;
const listeners = [];

/** The page's language: "pt-BR" or "en". */
export function lang() {
  return current;
}

/** Whether the dictionary has `key`. */
export function has(key) {
  return key in DICTIONARIES[current] || key in PT;
}

/**
 * The text of `key` in the page's language, {name} replaced from `vars` (a var may itself be
 * a message, see msg()); the key itself when unknown.
 */
export function t(key, vars) {
  const text = DICTIONARIES[current][key] ?? PT[key];
  if (text === undefined) return key;
  return vars ? text.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? say(vars[k]) : m)) : text;
}

/** A message kept as key and vars, so a status line can be redrawn in another language. */
export function msg(key, vars) {
  return [key, vars];
}

/** The text of a message (msg()) or of a plain string. */
export function say(m) {
  return Array.isArray(m) ? t(m[0], m[1]) : String(m ?? "");
}

/** t(key) when this language's dictionary has it, else `fallback` (enum values newer than the page, the server's English table descriptions). */
export function tOr(key, fallback, vars) {
  return key in DICTIONARIES[current] ? t(key, vars) : fallback;
}

/** Runs `fn` after each change of language (views redraw what they show). */
export function onLang(fn) {
  listeners.push(fn);
}

function applyStatic() {
  document.documentElement.lang = current;
  document.title = t("doc_title");
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
}

/** Switches the language (unknown codes are ignored) and redraws. */
export function setLang(code) {
  if (!(code in DICTIONARIES)) return;
  current = code;
  try {
    sessionStorage.setItem(STORE, code);
  } catch {
    // Storage refused (privacy mode): the choice lasts until reload.
  }
  if (select) select.value = code;
  applyStatic();
  for (const fn of listeners) fn();
}

/** Binds the language select and applies the saved (or default pt-BR) language. */
export function initLang(el) {
  select = el;
  el.addEventListener("change", () => setLang(el.value));
  let saved = null;
  try {
    saved = sessionStorage.getItem(STORE);
  } catch {
    saved = null;
  }
  setLang(saved && saved in DICTIONARIES ? saved : "pt-BR");
}
