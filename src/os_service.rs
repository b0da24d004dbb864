//! `goim service …`: GOIM under the Windows service control manager (SCM). `install`,
//! `uninstall`, `start` and `stop` talk to the SCM; `run` is what the SCM starts: the
//! server, with the SCM's Stop and Shutdown as its stop signal, logging to a file in the
//! data directory. On Linux systemd plays this part (docs/operations.md, and
//! [`crate::readiness`]); there these commands only say so.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use crate::config::{Config, ServiceCommand};

/// The service's name in the SCM (`sc query goim`).
pub const SERVICE_NAME: &str = "goim";

/// A service starts in `C:\Windows\System32`, so a relative data directory (such as the
/// default `./data`) would land there; it becomes `<ProgramData>\GOIM` instead. An
/// absolute one is kept.
pub fn service_data_dir(configured: &Path, program_data: Option<&Path>) -> PathBuf {
    if configured.is_absolute() {
        return configured.to_path_buf();
    }
    program_data.unwrap_or(Path::new("C:\\ProgramData")).join("GOIM")
}

/// Runs `goim service <command>` and reports the outcome on the console (or, for `run`,
/// in the service's log file).
pub fn run(command: ServiceCommand, config: &Config) -> ExitCode {
    #[cfg(windows)]
    {
        windows::run(command, config)
    }
    #[cfg(not(windows))]
    {
        let _ = (command, config);
        eprintln!(
            "goim service: Windows services only. On Linux run GOIM under systemd: docs/operations.md has the unit file"
        );
        ExitCode::from(2)
    }
}

#[cfg(windows)]
mod windows {
    use std::{
        ffi::OsString,
        path::PathBuf,
        process::ExitCode,
        time::{Duration, Instant},
    };

    use anyhow::Context;
    use clap::Parser;
    use tokio_util::sync::CancellationToken;
    use windows_service::{
        define_windows_service,
        service::{
            ServiceAccess, ServiceControl, ServiceControlAccept, ServiceErrorControl, ServiceExitCode, ServiceInfo,
            ServiceStartType, ServiceState, ServiceStatus, ServiceType,
        },
        service_control_handler::{self, ServiceControlHandlerResult, ServiceStatusHandle},
        service_dispatcher,
        service_manager::{ServiceManager, ServiceManagerAccess},
    };

    use super::{SERVICE_NAME, service_data_dir};
    use crate::config::{Cli, Config, ServiceCommand};

    /// How long `start` and `stop` wait for the service to get there: a first start
    /// runs initdb.
    const STATE_TIMEOUT: Duration = Duration::from_secs(180);
    /// What the SCM is told to allow for start-up and for the stop (drain, then
    /// PostgreSQL's fast shutdown) before it considers the service hung.
    const PENDING_HINT: Duration = Duration::from_secs(120);

    pub fn run(command: ServiceCommand, config: &Config) -> ExitCode {
        let result = match command {
            ServiceCommand::Install => install(config),
            ServiceCommand::Uninstall => uninstall(),
            ServiceCommand::Start => start(),
            ServiceCommand::Stop => stop(),
            ServiceCommand::Run => {
                // Blocks until the service has stopped; `service_main` runs meanwhile on a
                // thread of the SCM's.
                return match service_dispatcher::start(SERVICE_NAME, ffi_service_main) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(error) => {
                        eprintln!(
                            "goim service run: {error} (this command is what the service control manager starts; \
                             use `goim service start`)"
                        );
                        ExitCode::FAILURE
                    }
                };
            }
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("goim service: {error:#}");
                ExitCode::FAILURE
            }
        }
    }

    fn data_dir(config: &Config) -> PathBuf {
        let program_data = std::env::var_os("ProgramData").map(PathBuf::from);
        service_data_dir(&config.managed.data_dir, program_data.as_deref())
    }

    fn install(config: &Config) -> anyhow::Result<()> {
        let data_dir = data_dir(config);
        std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
        let exe = std::env::current_exe().context("cannot tell where goim.exe is")?;
        let exe = dunce::canonicalize(&exe).unwrap_or(exe);
        let mut launch_arguments: Vec<OsString> =
            vec!["service".into(), "run".into(), "--data-dir".into(), data_dir.clone().into()];
        if let Some(pg_bin) = &config.managed.pg_bin {
            launch_arguments.extend(["--pg-bin".into(), pg_bin.clone().into()]);
        }
        let manager = ServiceManager::local_computer(
            None::<&str>,
            ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
        )
        .context("cannot open the service control manager (run this from an administrator prompt)")?;
        let info = ServiceInfo {
            name: SERVICE_NAME.into(),
            display_name: "GOIM instant messaging".into(),
            service_type: ServiceType::OWN_PROCESS,
            start_type: ServiceStartType::AutoStart,
            error_control: ServiceErrorControl::Normal,
            executable_path: exe.clone(),
            launch_arguments,
            dependencies: vec![],
            // LocalSystem; PostgreSQL is started through pg_ctl, which drops its
            // administrative rights.
            account_name: None,
            account_password: None,
        };
        let service = manager
            .create_service(&info, ServiceAccess::CHANGE_CONFIG)
            .context("cannot create the service (is it installed already? `goim service uninstall` removes it)")?;
        // Only cosmetic: Wine's SCM, for one, lacks it.
        let _ = service.set_description("GOIM instant-messaging server and its PostgreSQL");
        println!(
            "installed service '{SERVICE_NAME}' ({}), starting at boot; data, settings (.env) and goim.log in {}",
            exe.display(),
            data_dir.display()
        );
        Ok(())
    }

    fn open(access: ServiceAccess) -> anyhow::Result<windows_service::service::Service> {
        let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
            .context("cannot open the service control manager")?;
        manager
            .open_service(SERVICE_NAME, access)
            .with_context(|| format!("cannot open service '{SERVICE_NAME}' (is it installed?)"))
    }

    fn start() -> anyhow::Result<()> {
        let service = open(ServiceAccess::START | ServiceAccess::QUERY_STATUS)?;
        service.start::<&str>(&[]).context("cannot start the service")?;
        wait_for(&service, ServiceState::Running)?;
        println!("service '{SERVICE_NAME}' is running");
        Ok(())
    }

    fn stop() -> anyhow::Result<()> {
        let service = open(ServiceAccess::STOP | ServiceAccess::QUERY_STATUS)?;
        stop_service(&service)?;
        println!("service '{SERVICE_NAME}' stopped");
        Ok(())
    }

    fn uninstall() -> anyhow::Result<()> {
        let service = open(ServiceAccess::STOP | ServiceAccess::QUERY_STATUS | ServiceAccess::DELETE)?;
        stop_service(&service)?;
        service.delete().context("cannot delete the service")?;
        println!("service '{SERVICE_NAME}' removed (its data directory is kept)");
        Ok(())
    }

    fn stop_service(service: &windows_service::service::Service) -> anyhow::Result<()> {
        let status = service.query_status().context("cannot query the service")?;
        if status.current_state != ServiceState::Stopped {
            service.stop().context("cannot stop the service")?;
            wait_for(service, ServiceState::Stopped)?;
        }
        Ok(())
    }

    fn wait_for(service: &windows_service::service::Service, wanted: ServiceState) -> anyhow::Result<()> {
        let deadline = Instant::now() + STATE_TIMEOUT;
        loop {
            let state = service.query_status().context("cannot query the service")?.current_state;
            if state == wanted {
                return Ok(());
            }
            if wanted == ServiceState::Running && state == ServiceState::Stopped {
                anyhow::bail!("the service stopped during start-up; its log is goim.log in its data directory");
            }
            if Instant::now() > deadline {
                anyhow::bail!("the service is still {state:?} after {} s", STATE_TIMEOUT.as_secs());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    define_windows_service!(ffi_service_main, service_main);

    /// The SCM's entry point; runs on a thread of the dispatcher's.
    fn service_main(_arguments: Vec<OsString>) {
        let stop = CancellationToken::new();
        let on_control = stop.clone();
        let registered = service_control_handler::register(SERVICE_NAME, move |control| match control {
            ServiceControl::Stop | ServiceControl::Shutdown => {
                on_control.cancel();
                ServiceControlHandlerResult::NoError
            }
            ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
            _ => ServiceControlHandlerResult::NotImplemented,
        });
        let Ok(status) = registered else {
            // Without a status handle nothing can be reported; the SCM sees the
            // process exit.
            return;
        };
        set_status(status, ServiceState::StartPending, PENDING_HINT);
        let exit_code = match serve_as_service(status, stop) {
            Ok(()) => ServiceExitCode::NO_ERROR,
            Err(error) => {
                tracing::error!(error = format!("{error:#}"), "goim stopped with an error");
                ServiceExitCode::ServiceSpecific(1)
            }
        };
        let _ = status.set_service_status(ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: ServiceState::Stopped,
            controls_accepted: ServiceControlAccept::empty(),
            exit_code,
            checkpoint: 0,
            wait_hint: Duration::ZERO,
            process_id: None,
        });
    }

    /// The settings come from the service's command line (`--data-dir`, written by
    /// `install`) and the `.env` in the data directory, which is also the working
    /// directory: the one in `C:\Windows\System32` is nobody's.
    fn serve_as_service(status: ServiceStatusHandle, stop: CancellationToken) -> anyhow::Result<()> {
        let first = Cli::try_parse().context("invalid command line")?;
        let data_dir = data_dir(&first.config);
        std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
        std::env::set_current_dir(&data_dir).with_context(|| format!("cannot enter {}", data_dir.display()))?;
        let env_loaded = dotenvy::from_path(data_dir.join(".env"));
        let mut config = Cli::try_parse().context("invalid configuration")?.config;
        config.managed.data_dir = data_dir.clone();
        config.validate().map_err(|message| anyhow::anyhow!("invalid configuration: {message}"))?;
        crate::telemetry::init_to_file(&config.server.log, config.server.log_format, &data_dir.join("goim.log"))
            .map_err(anyhow::Error::msg)?;
        if let Err(error) = env_loaded
            && !error.not_found()
        {
            anyhow::bail!("invalid configuration: {}: {error}", data_dir.join(".env").display());
        }
        tracing::info!(data_dir = %data_dir.display(), "starting as a Windows service");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let stop_requested = async move {
            stop.cancelled().await;
            tracing::info!("the service control manager asked GOIM to stop");
            set_status(status, ServiceState::StopPending, PENDING_HINT);
        };
        runtime.block_on(crate::cli::serve(config, stop_requested, || {
            set_status(status, ServiceState::Running, Duration::ZERO);
        }))
    }

    fn set_status(status: ServiceStatusHandle, state: ServiceState, wait_hint: Duration) {
        let controls_accepted = if state == ServiceState::Running {
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
        } else {
            ServiceControlAccept::empty()
        };
        let result = status.set_service_status(ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted,
            exit_code: ServiceExitCode::NO_ERROR,
            checkpoint: 0,
            wait_hint,
            process_id: None,
        });
        if let Err(error) = result {
            tracing::warn!(%error, ?state, "cannot report the service state");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_data_dir_moves_out_of_the_services_working_directory() {
        let program_data = Path::new("/programdata");
        assert_eq!(service_data_dir(Path::new("./data"), Some(program_data)), program_data.join("GOIM"));
        assert_eq!(service_data_dir(Path::new("data"), None), Path::new("C:\\ProgramData").join("GOIM"));
    }

    #[test]
    fn an_absolute_data_dir_is_kept() {
        let chosen = std::env::temp_dir().join("goim-service");
        assert_eq!(service_data_dir(&chosen, Some(Path::new("/programdata"))), chosen);
    }
}
