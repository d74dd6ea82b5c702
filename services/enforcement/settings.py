from libs.runtime.settings import ServiceSettings


class Settings(ServiceSettings):
    service: str = "enforcement"
    port: int = 8005
