"""The words people reach for, per config key and per choice: did-you-mean beyond close spellings.

difflib finds ``adress`` → ``address``, but not ``slave`` → ``unit`` or ``modulus`` → ``rollover``: those are
other tools' names for the same thing (PLC software, other meter readers, the meter's manual). A hint is
only given for a key or choice that exists where the error is, so each entry is keyed by the real name: the
plain field name, or ``Model.field`` when one name means different things in different tables (``unit`` is
the Modbus unit id of a device but the engineering unit of a point). Words are lower case, ``_`` for
separators; the lookup normalises what was written the same way.
"""

from __future__ import annotations

#: Config key (``field`` or ``Model.field``) → unknown keys meaning it, separated by spaces.
_KEY_WORDS: dict[str, str] = {
    # agent: [agent], [outbox], [health]
    "AgentSection.id": "agent_id name gateway gateway_id",
    "AgentSection.site": "site_id plant plant_id",
    "log_level": "level loglevel logging verbosity debug",
    "batch_interval": "interval publish_interval batch_period batch_s period",
    "OutboxSection.path": "file db database sqlite outbox",
    "max_bytes": "max_size size size_limit limit",
    "max_age_s": "max_age retention ttl keep_s",
    "replay_rate": "replay replay_per_s rate",
    "listen": "address bind listen_address http port",
    "stall_s": "stall stall_timeout watchdog",
    # MQTT (agent and collector)
    "host": "ip ip_address address hostname server broker",
    "MqttSection.port": "tcp_port broker_port",
    "username": "user login user_name",
    "password": "pass passwd pwd secret",
    "keepalive": "keep_alive keepalive_s ping",
    "keepalive_s": "keepalive keep_alive ping",
    "root": "topic topic_root prefix topic_prefix base_topic",
    "topic_root": "root topic prefix topic_prefix base_topic",
    "client_id": "client clientid id",
    "tls": "ssl secure use_tls encrypt",
    "ca_file": "ca cafile ca_cert ca_certs ca_path",
    "cert_file": "cert certfile certificate client_cert",
    "key_file": "key keyfile private_key client_key",
    "shared_group": "group share share_group",
    # Modbus device
    "ModbusDevice.unit": "slave slave_id slaveid slave_address unit_id unitid device_id modbus_id "
    "station station_id",
    "ModbusDevice.port": "tcp_port",
    "serial_port": "device serial tty com com_port comport serial_device",
    "baudrate": "baud baud_rate speed bitrate",
    "bytesize": "data_bits databits byte_size bits",
    "stopbits": "stop_bits stop",
    "retries": "retry attempts max_retries",
    "ModbusDevice.timeout": "timeout_s response_timeout",
    "ct_ratio": "ct current_ratio",
    "pt_ratio": "pt vt vt_ratio voltage_ratio",
    "profile": "meter model meter_type template",
    "points": "registers tags point values channels",
    # Modbus point
    "ModbusPoint.address": "register reg addr register_address start",
    "function": "fc function_code func fn table register_type",
    "ModbusPoint.type": "data_type datatype dtype format value_type",
    "scale": "multiplier factor gain scaling scale_factor",
    "ModbusPoint.unit": "units uom eng_unit engineering_unit",
    "order": "byte_order word_order endian endianness swap byteorder",
    "bit": "bit_index bitno bit_number",
    "interval": "poll_interval polling_interval poll_rate scan_rate scan_interval period interval_s "
    "poll_s rate",
    "name": "id tag channel label",
    # OPC UA
    "endpoint": "url endpoint_url server address opc_url",
    "node": "node_id nodeid tag address",
    "security_policy": "policy security",
    "cert_dir": "cert_folder pki certificates certs",
    # collector
    "site_model": "site site_file model site_toml site_path",
    "ledger": "db database ledger_path sqlite",
    "kpi_interval_s": "interval kpi_interval poll_interval compute_interval interval_s",
    "periods": "period kpi_periods aggregations",
    "max_future_s": "max_future future_s clock_skew",
    "max_payload_bytes": "max_payload payload_limit",
    # InfluxDB sink
    "url": "host server address endpoint",
    "database": "db db_name database_name dbname",
    "retention_policy": "rp retention",
    "org": "organization organisation org_id",
    "bucket": "bucket_name",
    "token": "api_token auth_token influx_token",
    "api": "version api_version",
    "timeout_s": "timeout",
    "batch_lines": "batch_size batch lines_per_request",
    "gzip": "compress compression",
    # site model
    "timezone": "tz time_zone zone tzname",
    "base_interval_s": "interval base_interval interval_s granularity resolution",
    "shift_starts": "shifts shift_start shift_times shift_hours",
    "altitude_m": "altitude elevation height",
    "rollover": "modulus wrap wraparound wrap_around max_value max maximum overflow counter_max "
    "rollover_at roll_over",
    "max_rate_per_h": "max_rate rate_limit max_per_h",
    "gap_limit_s": "gap_limit max_gap gap gap_s",
    "Channel.kind": "type channel_type",
    "Channel.unit": "units uom",
    "Channel.line": "line_id kiln kiln_line",
    "role": "direction usage use",
    "carrier": "energy medium commodity energy_carrier material",
    "boundary": "scope system",
    "fuel": "fuel_type coal_type",
    "quantity": "type kind what parameter",
    "valid_from": "from start since valid_since begin",
    "valid_to": "to until end valid_until",
    "source": "reference report sample lot lab_report",
    "grid_factor": "grid grid_ef grid_emission_factor emission_factor",
    "process_factor": "process_ef clinker_factor",
    "whr_treatment": "whr waste_heat",
}

#: A choice of a ``Literal`` key (as written in TOML) → values meaning it, separated by spaces.
_VALUE_WORDS: dict[str, str] = {
    # lab quantities
    "ncv_mj_per_kg": "ncv lhv ncv_mj_kg calorific_value net_calorific_value heating_value",
    "carbon_t_per_gj": "carbon carbon_content cc carbon_factor",
    "biogenic_fraction": "biogenic bio_fraction biomass_fraction biomass",
    "clinker_ratio": "clinker_factor clinker_content clinker_share",
    "clinker_cao": "cao",
    "clinker_mgo": "mgo",
    # carriers and roles
    "electricity": "power electric electrical kwh grid",
    "natural_gas": "gas ng lng cng",
    "diesel": "oil fuel_oil gasoil",
    "consumption": "input consumed use load",
    "output": "production product produced",
    # Modbus
    "float32": "float real single f32",
    "float64": "double lreal f64",
    "int16": "int short signed i16",
    "uint16": "word unsigned ushort u16",
    "int32": "long dint i32",
    "uint32": "ulong udint dword u32",
    "int64": "lint i64",
    "uint64": "ulint u64",
    "ABCD": "big big_endian msw_first high_word_first",
    "CDAB": "word_swap word_swapped swapped lsw_first low_word_first",
    "BADC": "byte_swap byte_swapped",
    "DCBA": "little little_endian",
    "N": "none no",
    "E": "even",
    "O": "odd",
    "rtu": "serial rs485 rs_485 rs232 modbus_rtu",
    "tcp": "modbus_tcp ethernet ip",
    "rtu-over-tcp": "rtu_over_tcp rtu_tcp gateway encapsulated",
    "3": "holding holding_register holding_registers fc3 03",
    "4": "input input_register input_registers fc4 04",
    "1": "coil coils fc1",
    "2": "discrete discrete_input discrete_inputs fc2",
    # logs
    "warning": "warn",
    "error": "err",
}

KEY_SYNONYMS: dict[str, tuple[str, ...]] = {key: tuple(words.split()) for key, words in _KEY_WORDS.items()}
VALUE_SYNONYMS: dict[str, tuple[str, ...]] = {
    key: tuple(words.split()) for key, words in _VALUE_WORDS.items()
}
