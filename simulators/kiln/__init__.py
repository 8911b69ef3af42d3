"""The simulated 5000 t/d clinker line (docs/demo-plant.md): model, Modbus meters, OPC UA DCS, truth."""
