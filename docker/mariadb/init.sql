-- The compose stack's MariaDB: the application database, a write user that
-- `read_only` stops (privileges on app only), and the orders table the example
-- application and the HTTP example write to.
CREATE DATABASE IF NOT EXISTS app;
CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY 'app-secret';
GRANT ALL ON app.* TO 'app'@'%';
CREATE TABLE IF NOT EXISTS app.orders (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  customer INT NOT NULL,
  total DECIMAL(10,2) NOT NULL,
  created_at DATETIME(6) NOT NULL
);
