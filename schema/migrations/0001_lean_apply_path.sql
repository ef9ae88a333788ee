CREATE INDEX `devices_max_lamport_idx` ON `devices` (`max_lamport`);--> statement-breakpoint
ALTER TABLE `ops` DROP COLUMN `space`;--> statement-breakpoint
ALTER TABLE `ops` DROP COLUMN `collection`;--> statement-breakpoint
ALTER TABLE `ops` DROP COLUMN `key`;